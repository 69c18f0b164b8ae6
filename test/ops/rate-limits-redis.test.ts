/**
 * `store: redis` against a real Redis (Debian's `redis-server`, started here on loopback with a free port,
 * no persistence, stopped by PID): the script applies the same rule as the memory store; two
 * `scopegate serve` processes share one limit; and when Redis dies mid-test, a route with
 * `onStoreError: closed` answers 503 while one with `open` lets requests through, and `/readyz` and the
 * metrics say Redis is disconnected (docs/rate-limits.md#redis).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Redis } from 'ioredis'
import { issuerAndEcho } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { RedisLimitStore } from '../../src/limits/redis-store.js'
import { freePort, metric, parseMetrics, spawnServe, waitFor, writeConfig } from './support.js'

const AUD = 'https://todo.api'

/** A throwaway redis-server on 127.0.0.1; resolves once it accepts connections. */
async function startRedis (port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  await waitFor('redis-server to accept connections', () => {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${output}`)
    return output.includes('Ready to accept connections')
  })
  return child
}

function stop (child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
}

t.test('store: redis', async (t) => {
  const redisPort = await freePort()
  const redis = await startRedis(redisPort)
  t.teardown(() => { stop(redis) })
  const url = `redis://127.0.0.1:${redisPort}/0`

  t.test('the script: a burst of `limit`, then refused with nothing spent; keys under the prefix, with a lifetime', async (t) => {
    const client = new Redis(url, { keyPrefix: 'unit:' })
    t.teardown(() => client.disconnect())
    const store = new RedisLimitStore(client)
    // One per 20 minutes: no request of this test can be allowed by time passing.
    const results = []
    for (let i = 0; i < 4; i++) results.push(await store.take('k', 3, 3_600_000))
    t.strictSame(results.map((r) => [r.allowed, r.remaining]), [[true, 2], [true, 1], [true, 0], [false, 0]])
    const refused = results[3]
    t.ok(refused !== undefined && refused.retryAfterMs > 0 && refused.retryAfterMs <= 1_200_000, 'retry after at most one interval')
    const ttl = await client.pttl('rl:k')
    t.ok(ttl > 0 && ttl <= 3_600_000, 'the key expires once the bucket is full again')
    t.equal((await store.take('other', 3, 3_600_000)).remaining, 2, 'another key, its own bucket')
  })

  const { key, jwks, echo } = await issuerAndEcho(t)
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-ratelimit-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))

  const serve = async (name: string): Promise<{ proxy: string, admin: string }> => {
    const [proxyPort, adminPort] = [await freePort(), await freePort()]
    const file = join(dir, `${name}.yaml`)
    await writeConfig(file, {
      server: { proxy: { host: '127.0.0.1', port: proxyPort }, admin: { host: '127.0.0.1', port: adminPort } },
      issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
      upstreams: { todo: { url: echo.url } },
      redis: { url, keyPrefix: 'sg-test:', timeout: '500ms' },
      routes: [
        { id: 'strict', match: { path: '/strict', prefix: true }, upstream: 'todo', rateLimit: { limit: 3, window: '1h', key: ['route', 'subject'], store: 'redis', onStoreError: 'closed' } },
        { id: 'lenient', match: { path: '/lenient', prefix: true }, upstream: 'todo', rateLimit: { limit: 1, window: '1h', key: ['route', 'subject'], store: 'redis', onStoreError: 'open' } }
      ]
    })
    const served = spawnServe(file)
    t.teardown(() => served.kill())
    await served.waitForLine(`${name} listening`, (line) => line.msg === 'scopegate listening')
    const admin = `http://127.0.0.1:${adminPort}`
    await waitFor(`${name} connected to redis`, async () => (await send(admin, '/readyz')).json?.redis?.state === 'connected')
    return { proxy: `http://127.0.0.1:${proxyPort}`, admin }
  }
  const a = await serve('a')
  const b = await serve('b')
  const alice = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', client_id: 'web' })

  t.test('two gateway processes share one limit', async (t) => {
    const before = echo.received.length
    const statuses = []
    for (const gw of [a, b, a, b, a]) statuses.push((await send(gw.proxy, '/strict', { headers: bearer(alice) })).status)
    t.strictSame(statuses, [200, 200, 200, 429, 429], 'three requests in all, whichever process answers')
    t.equal(echo.received.length, before + 3, 'the refused requests reached nothing')
    const res = await send(b.proxy, '/strict', { headers: bearer(alice) })
    t.equal(res.json?.error, 'rate_limited')
    t.equal(res.headers['ratelimit-policy'], '"strict";q=3;w=3600')
    t.match(res.headers.ratelimit, /^"strict";r=0;t=\d+$/)
    t.match(res.headers['retry-after'], /^\d+$/)
    t.equal(metric(parseMetrics((await send(a.admin, '/metrics')).body), 'scopegate_redis_connected'), 1)
    t.equal((await send(a.proxy, '/lenient', { headers: bearer(alice) })).status, 200)
    t.equal((await send(b.proxy, '/lenient', { headers: bearer(alice) })).status, 429, 'the lenient route is limited too while Redis answers')
  })

  t.test('Redis dies: fail closed answers 503, fail open lets through; /readyz and metrics show it', async (t) => {
    stop(redis)
    await waitFor('a to notice', async () => (await send(a.admin, '/readyz')).json?.redis?.state === 'disconnected')
    const ready = await send(a.admin, '/readyz')
    t.equal(ready.status, 200, 'still ready: each route decides what an outage means')

    const bob = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'bob', client_id: 'web' })
    const before = echo.received.length
    const closed = await send(a.proxy, '/strict', { headers: bearer(bob) })
    t.equal(closed.status, 503)
    t.strictSame(closed.json, { error: 'temporarily_unavailable', error_description: 'the rate limit cannot be checked; retry later' })
    t.equal(closed.headers['retry-after'], '1')
    t.equal(echo.received.length, before, 'a closed route sends nothing upstream')

    for (let i = 0; i < 3; i++) t.equal((await send(a.proxy, '/lenient', { headers: bearer(alice) })).status, 200, 'an open route lets every request through')
    t.equal(echo.received.length, before + 3)
    t.equal(echo.received.at(-1)?.headers['x-auth-subject'], 'alice')
    t.equal((await send(a.proxy, '/strict', {})).status, 401, 'authentication still comes first')

    const samples = parseMetrics((await send(a.admin, '/metrics')).body)
    t.equal(metric(samples, 'scopegate_redis_connected'), 0)
    t.equal(metric(samples, 'scopegate_rate_limit_store_errors_total', { route: 'strict', outcome: 'closed' }), 1)
    t.equal(metric(samples, 'scopegate_rate_limit_store_errors_total', { route: 'lenient', outcome: 'open' }), 3)
    t.equal(metric(samples, 'scopegate_requests_total', { route: 'strict', decision: 'deny', reason: 'rate_limit_unavailable' }), 1)
  })
})
