/**
 * `server.workers: 3` under node:cluster with a real JWKS server counting what the issuer sees: the
 * workers fetch keys through the primary, so a rotation seen by all three workers, and an outage, each
 * cost the issuer one fetch; stale keys keep serving through the outage with `/readyz` ready;
 * and a wedged primary (SIGSTOP) does not stop a worker from learning a new key: it fetches itself after
 * the bounded wait (docs/operations.md#workers-multi-core).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Client } from 'undici'
import { issuerAndEcho } from '../helpers/gateway.js'
import { bearer, send, type TestResponse } from '../helpers/http.js'
import { makeKey, mintToken, type TestKey } from '../helpers/jwks-server.js'
import { freePort, sleep, spawnServe, waitFor, writeConfig } from './support.js'

const AUD = 'https://todo.api'
const START_MS = 60_000 // a loaded machine takes a while to boot four node processes
const WORKERS = 3
/** The issuer's jwks.cooldown: a worker refetches for an unknown kid at most this often (milliseconds). */
const COOLDOWN_MS = 2000
/** Requests sent at once on new connections, so that the round-robin hand-off reaches every worker. */
const SPRAY = 3 * WORKERS
t.setTimeout(240_000)

t.test('three workers share one key fetch', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-key-fetch-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'scopegate.yaml')
  const [proxyPort, adminPort] = [await freePort(), await freePort()]
  await writeConfig(file, {
    server: { proxy: { host: '127.0.0.1', port: proxyPort }, admin: { host: '127.0.0.1', port: adminPort }, workers: WORKERS, shutdownTimeout: '2s' },
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD], jwks: { cooldown: `${COOLDOWN_MS}ms` } }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' }]
  })
  const served = spawnServe(file)
  t.teardown(() => served.kill())
  const proxy = `http://127.0.0.1:${proxyPort}`
  const admin = `http://127.0.0.1:${adminPort}`
  await served.waitForLine('the group to listen', (line) => line.msg === 'scopegate listening' && line.worker === 'primary', START_MS)
  const tokenOf = async (signer: TestKey): Promise<string> => await mintToken(signer, { iss: jwks.issuer, aud: AUD, sub: 'alice' })

  /** SPRAY requests at once, each on its own connection; the answers, and the workers whose decision lines they made. */
  const spray = async (token: string, path: string): Promise<{ answers: TestResponse[], workers: Set<unknown> }> => {
    const mark = served.lines.length
    const answers = await Promise.all(Array.from({ length: SPRAY }, (_, i) => send(proxy, `${path}/${i}`, { headers: bearer(token) })))
    const lines = await waitFor('a decision line for each request', () => {
      const found = served.lines.slice(mark).filter((line) => line.msg === 'decision' && String(line.path).startsWith(path))
      return found.length === SPRAY ? found : undefined
    })
    return { answers, workers: new Set(lines.map((line) => line.worker)) }
  }

  // Start-up is one fetch too when the workers start within a cooldown of each other (test/ops/cluster.test.ts,
  // with the default 30 s); this short cooldown is for the tests below, and a loaded machine may start them further apart.

  t.test('a new kid seen by all three workers makes one fetch', async (t) => {
    const next = await makeKey('ES256')
    jwks.setKeys([key, next])
    await sleep(COOLDOWN_MS + 500) // each worker's cooldown since its start-up attempt
    const [before, seen] = [jwks.fetches, echo.received.length]
    const { answers, workers } = await spray(await tokenOf(next), '/todos/rotated')
    t.same(answers.map((res) => res.status), Array(SPRAY).fill(200), 'every request allowed')
    t.same([...workers].sort(), [1, 2, 3], 'all three workers saw the new kid')
    t.equal(jwks.fetches - before, 1, 'one fetch for the group')
    t.equal(echo.received.length - seen, SPRAY, 'the upstream got every request')
    t.ok(echo.received.slice(seen).every((req) => req.url.startsWith('/todos/rotated/')))
  })

  t.test('an outage: one failed fetch for the group, the last good keys serve, /readyz stays ready', async (t) => {
    jwks.setMode('down')
    await sleep(COOLDOWN_MS + 500)
    const before = jwks.fetches
    const stranger = await makeKey('ES256')
    const seen = echo.received.length
    const refused = await spray(await tokenOf(stranger), '/todos/unknown')
    for (const res of refused.answers) {
      t.equal(res.status, 401)
      t.equal(res.json?.error, 'invalid_token')
      t.match(res.headers['www-authenticate'], /^Bearer realm="scopegate", error="invalid_token"/)
    }
    t.equal(refused.workers.size, WORKERS, 'every worker looked for the unknown kid')
    t.equal(jwks.fetches - before, 1, 'one fetch for the group, which failed')
    t.equal(echo.received.length, seen, 'the upstream saw none of them')

    const stale = await spray(await tokenOf(key), '/todos/stale')
    t.same(stale.answers.map((res) => res.status), Array(SPRAY).fill(200), 'the last good key still verifies')
    t.equal(echo.received.length - seen, SPRAY)
    const ready = await send(admin, '/readyz')
    t.equal(ready.status, 200, 'stale keys are usable keys: ready')
    const states = (ready.json.processes as Array<{ issuers: Array<{ state: string, lastError: string }> }>).map((p) => p.issuers[0])
    t.equal(states.length, WORKERS)
    for (const state of states) t.match(state, { state: 'stale', lastError: /^status: answered HTTP 503/ })
    jwks.setMode('ok')
  })

  t.test('a wedged primary: the worker fetches itself after the bounded wait, and the request passes', async (t) => {
    const client = new Client(proxy, { pipelining: 1 })
    t.teardown(() => client.close())
    const get = async (token: string, path: string): Promise<number> => {
      const res = await client.request({ method: 'GET', path, headers: bearer(token) })
      await res.body.dump()
      return res.statusCode
    }
    t.equal(await get(await tokenOf(key), '/todos/kept-alive'), 200, 'a kept-alive connection to one worker')
    const late = await makeKey('ES256')
    jwks.setKeys([key, late])
    await sleep(COOLDOWN_MS + 500)
    const [before, seen, mark] = [jwks.fetches, echo.received.length, served.lines.length]
    served.signal('SIGSTOP')
    t.teardown(() => { served.signal('SIGCONT') })
    const status = await get(await tokenOf(late), '/todos/wedged')
    served.signal('SIGCONT')
    t.equal(status, 200, 'the new kid was learnt without the primary')
    t.equal(jwks.fetches - before, 1, 'the worker\'s own fetch')
    t.equal(echo.received.length - seen, 1)
    t.equal(echo.received.at(-1)?.url, '/todos/wedged')
    const warned = await served.waitForLine('the fallback warning', (line) => line.msg === 'fetching keys directly: the cluster primary did not take the fetch on', 10_000, mark)
    t.match(warned, { level: 40, url: jwks.url, reason: /did not take the fetch on within 1000 ms/ })
    t.type(warned.worker, 'number', 'logged by the worker')
  })
})
