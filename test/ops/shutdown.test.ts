/**
 * Graceful shutdown (docs/operations.md#graceful-shutdown): on close, or SIGTERM for `scopegate serve`, /readyz answers 503 at
 * once, the proxy listener refuses new connections, a request under way completes with 200, idle
 * keep-alive connections are closed rather than waited for, the drain is bounded by
 * `server.shutdownTimeout`, and the process exits 0.
 */
import http from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startEcho } from '../helpers/echo-upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, type TestResponse } from '../helpers/http.js'
import { freePort, spawnServe, waitFor, writeConfig } from './support.js'

const openRoute = (upstream: string): Record<string, unknown> => ({
  upstreams: { slow: { url: upstream } },
  routes: [{ id: 'slow', match: { path: '/slow', prefix: true }, upstream: 'slow', auth: 'none' }]
})

/** A request on a keep-alive connection; resolves with the response and the socket, left open and idle. */
function keepAliveRequest (base: string, path: string): Promise<{ res: TestResponse, socket: Socket, closed: Promise<void> }> {
  const url = new URL(base)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, agent }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => {
        const socket = req.socket as Socket
        const closed = new Promise<void>((resolve) => { if (socket.destroyed) resolve(); else socket.once('close', () => resolve()) })
        resolve({ res: { status: res.statusCode ?? 0, headers: res.headers, body, json: undefined }, socket, closed })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

/** Resolves with the error code of a connection attempt (ECONNREFUSED), or 'connected'. */
async function connectOutcome (base: string): Promise<string> {
  try {
    await send(base, '/slow/new', { timeoutMs: 3000 })
    return 'connected'
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message
  }
}

t.test('Gateway.close drains: in-flight completes, new connections refused, idle keep-alive closed', async (t) => {
  const echo = await startEcho()
  t.teardown(() => echo.close())
  const gw = await startGateway({ ...openRoute(echo.url), server: { shutdownTimeout: '10s' } })
  t.teardown(() => gw.close())

  const idle = await keepAliveRequest(gw.proxyUrl, '/slow/warm')
  t.equal(idle.res.status, 200, 'a keep-alive connection, now idle')

  echo.setMode({ delayMs: 1200 })
  // On a keep-alive connection too: once answered, it must be closed, not kept for its keep-alive timeout.
  const inFlight = keepAliveRequest(gw.proxyUrl, '/slow/long')
  await waitFor('the upstream to receive the slow request', () => echo.received.some((r) => r.url === '/slow/long'))

  const started = Date.now()
  const closing = gw.close()
  const ready = await send(gw.adminUrl, '/readyz')
  t.equal(ready.status, 503, '/readyz answers 503 at once')
  t.equal(ready.json?.status, 'shutting_down')
  t.equal(await connectOutcome(gw.proxyUrl), 'ECONNREFUSED', 'new connections to the proxy are refused')
  await idle.closed
  t.ok(Date.now() - started < 1000, 'the idle keep-alive connection was closed at once')

  const { res, closed } = await inFlight
  t.equal(res.status, 200, 'the request in flight completes')
  await closed
  await closing
  const took = Date.now() - started
  t.ok(took >= 1000 && took < 3000, `close() waited for the request, not for the bound (${took} ms)`)
  t.equal(await connectOutcome(gw.adminUrl), 'ECONNREFUSED', 'the admin listener is closed at the end')
  t.match(gw.decisions().at(-1), { route: 'slow', decision: 'allow', status: 200 })
})

t.test('Gateway.close is bounded by server.shutdownTimeout', async (t) => {
  const echo = await startEcho()
  t.teardown(() => echo.close())
  const gw = await startGateway({ ...openRoute(echo.url), server: { shutdownTimeout: '500ms' } })
  t.teardown(() => gw.close())
  echo.setMode('hang')
  const stuck = send(gw.proxyUrl, '/slow/forever').then(() => 'answered', (err: Error) => err.message)
  await waitFor('the upstream to receive the request', () => echo.received.length > 0)
  const started = Date.now()
  await gw.close()
  const took = Date.now() - started
  t.ok(took >= 450 && took < 2500, `close() returned after the bound (${took} ms)`)
  t.not(await stuck, 'answered', 'the request past the bound was cut')
})

t.test('scopegate serve: SIGTERM while a slow request is in flight', async (t) => {
  const echo = await startEcho()
  t.teardown(() => echo.close())
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-shutdown-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const [proxyPort, adminPort] = [await freePort(), await freePort()]
  const file = join(dir, 'scopegate.yaml')
  await writeConfig(file, {
    server: { proxy: { host: '127.0.0.1', port: proxyPort }, admin: { host: '127.0.0.1', port: adminPort }, shutdownTimeout: '10s' },
    ...openRoute(echo.url)
  })
  const served = spawnServe(file)
  t.teardown(() => served.kill())
  await served.waitForLine('listening', (line) => line.msg === 'scopegate listening')
  const proxy = `http://127.0.0.1:${proxyPort}`
  const admin = `http://127.0.0.1:${adminPort}`

  const idle = await keepAliveRequest(proxy, '/slow/warm')
  t.equal(idle.res.status, 200)
  echo.setMode({ delayMs: 1500 })
  const inFlight = send(proxy, '/slow/long')
  await waitFor('the upstream to receive the slow request', () => echo.received.some((r) => r.url === '/slow/long'))

  const started = Date.now()
  served.signal('SIGTERM')
  await served.waitForLine('shutting down', (line) => typeof line.msg === 'string' && line.msg.startsWith('shutting down'))
  const ready = await send(admin, '/readyz')
  t.equal(ready.status, 503, '/readyz answers 503 at once')
  t.equal(await connectOutcome(proxy), 'ECONNREFUSED', 'new connections are refused')
  const res = await inFlight
  t.equal(res.status, 200, 'the request in flight completes with 200')
  t.same(await served.exited, { code: 0, signal: null }, 'the process exits 0')
  const took = Date.now() - started
  t.ok(took < 5000, `it exited once drained, well before the 10 s bound (${took} ms)`)
  await idle.closed
})
