/**
 * WebSocket handshakes spend the route's rate limit (docs/rate-limits.md#websockets), with `ws` as the
 * client and a real WebSocket upstream: the handshakes within the limit open, the next one is answered 429
 * with `Retry-After` and the RateLimit fields, never a 101, and the upstream sees no handshake for it. The
 * key is the HTTP one, so plain requests and handshakes share a bucket; a handshake the policy denies
 * spends nothing. Once with the memory store and once with a real `redis-server`.
 */
import t, { type Test } from 'tap'
import { compileTestConfig, startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { makeKey, mintToken, startJwksServer } from '../helpers/jwks-server.js'
import { startRedis } from '../helpers/redis-server.js'
import { openWs, startWsUpstream, type Opened } from '../helpers/ws-upstream.js'

const API = 'https://chat.api'

/** Rejects when `promise` has not settled within `ms` milliseconds, so a broken gateway fails a test instead of hanging it. */
function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: not within ${ms} ms`)) }, ms) })
  return Promise.race([promise, timeout]).finally(() => { clearTimeout(timer) })
}

async function handshake (t: Test, url: string, token: string): Promise<Opened> {
  const result = await within(openWs(url, { headers: { authorization: `Bearer ${token}` } }), 10_000, 'handshake')
  if (result.open) t.teardown(() => { result.socket.terminate() })
  return result
}

for (const store of ['memory', 'redis'] as const) {
  t.test(`store: ${store}: a WebSocket handshake spends one request of its route's limit`, async (t) => {
    const key = await makeKey('ES256')
    const jwks = await startJwksServer([key])
    t.teardown(() => jwks.close())
    const upstream = await startWsUpstream()
    t.teardown(() => upstream.close())
    let redis: Record<string, unknown> | undefined
    if (store === 'redis') {
      const server = await startRedis()
      t.teardown(() => server.stop())
      redis = { url: server.url, keyPrefix: 'ws-test:', timeout: '2s' }
    }
    // One per 20 minutes after the burst: no handshake of this test is allowed by time passing.
    const rateLimit = { limit: 2, window: '1h', key: ['route', 'subject'], store, onStoreError: 'closed' }
    const gw = await startGateway({
      issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
      upstreams: { chat: { url: upstream.url } },
      ...(redis === undefined ? {} : { redis }),
      routes: [{ id: 'chat', match: { path: '/chat', prefix: true }, upstream: 'chat', policy: { scopes: { require: ['chat'] } }, websocket: { enabled: true }, rateLimit }]
    })
    t.teardown(() => gw.close())
    if (store === 'redis') {
      // Bounded: 100 tries, 50 ms apart.
      for (let i = 0; i < 100 && gw.gateway.redisConnected() !== true; i++) await new Promise((resolve) => setTimeout(resolve, 50))
      t.equal(gw.gateway.redisConnected(), true, 'the gateway connected to redis')
    }
    const ws = gw.proxyUrl.replace(/^http/, 'ws')
    const claims = { iss: jwks.issuer, aud: API, client_id: 'chat-app', scope: 'chat' }
    const alice = await mintToken(key, { ...claims, sub: 'alice' })
    const bob = await mintToken(key, { ...claims, sub: 'bob' })
    const aliceNoScope = await mintToken(key, { ...claims, sub: 'alice', scope: 'read' })

    t.test('a handshake the policy denies spends nothing', async (t) => {
      const denied = await handshake(t, `${ws}/chat/room`, aliceNoScope)
      t.equal(denied.open ? 101 : denied.status, 403)
      t.equal(upstream.handshakes.length, 0, 'the upstream saw nothing')
    })

    t.test('within the limit: the handshakes open and reach the upstream', async (t) => {
      const first = await handshake(t, `${ws}/chat/one`, alice)
      t.ok(first.open, 'the first opens')
      // The HTTP request shares the bucket: same route, same subject.
      const plain = await send(gw.proxyUrl, '/chat/plain', { headers: bearer(alice) })
      t.equal(plain.status, 404, 'a plain request spends the second (the ws upstream answers 404 to HTTP)')
      t.strictSame(upstream.handshakes.map((h) => h.url), ['/chat/one'])
    })

    t.test('over the limit: 429 with Retry-After and the RateLimit fields, no 101, nothing upstream', async (t) => {
      const limited = await handshake(t, `${ws}/chat/two`, alice)
      if (limited.open) {
        t.fail('the handshake was answered 101')
        return
      }
      t.equal(limited.status, 429)
      t.equal(limited.json?.error, 'rate_limited')
      t.equal(limited.headers['cache-control'], 'no-store')
      const retryAfter = Number(limited.headers['retry-after'])
      t.ok(retryAfter >= 1 && retryAfter <= 1800, `Retry-After is whole seconds until the next request (${retryAfter})`)
      t.equal(limited.headers['ratelimit-policy'], '"chat";q=2;w=3600')
      t.match(limited.headers.ratelimit, /^"chat";r=0;t=\d+$/)
      t.notOk(limited.headers['www-authenticate'], 'no challenge: the credentials were fine')
      t.notOk(limited.headers.upgrade, 'no upgrade')
      t.strictSame(upstream.handshakes.map((h) => h.url), ['/chat/one'], 'the upstream saw no handshake for it')
      const logged = gw.decisions().filter((d) => d.path === '/chat/two')
      t.strictSame(logged.map((d) => [d.decision, d.reason, d.status]), [['deny', 'rate_limited', 429]], 'logged as a limited request')
    })

    t.test('another subject has its own bucket', async (t) => {
      const other = await handshake(t, `${ws}/chat/three`, bob)
      t.ok(other.open, 'bob opens')
      t.strictSame(upstream.handshakes.map((h) => h.url), ['/chat/one', '/chat/three'])
    })
  })
}

t.test('store: redis, onStoreError: closed, Redis unreachable: the handshake is 503 and the upstream sees nothing', async (t) => {
  const key = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  const upstream = await startWsUpstream()
  t.teardown(() => upstream.close())
  const server = await startRedis()
  await server.stop()
  const config = {
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { chat: { url: upstream.url } },
    redis: { url: server.url, timeout: '200ms' },
    routes: [{ id: 'chat', match: { path: '/chat', prefix: true }, upstream: 'chat', websocket: { enabled: true }, rateLimit: { limit: 5, window: '1m', store: 'redis', onStoreError: 'closed' } }]
  }
  compileTestConfig(config)
  const gw = await startGateway(config)
  t.teardown(() => gw.close())
  const token = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice' })
  const answer = await handshake(t, `${gw.proxyUrl.replace(/^http/, 'ws')}/chat/room`, token)
  t.equal(answer.open ? 101 : answer.status, 503)
  if (!answer.open) {
    t.equal(answer.json?.error, 'temporarily_unavailable')
    t.equal(answer.headers['retry-after'], '1')
  }
  t.equal(upstream.handshakes.length, 0, 'the upstream saw nothing')
})
