/**
 * Rate limits end to end with the memory store (docs/rate-limits.md): a real gateway, a real JWKS server
 * and an echo upstream; time injected, so the window passes without sleeping. What the client saw (429,
 * `Retry-After`, `RateLimit`, `RateLimit-Policy`) and what the upstream saw (nothing of a refused request),
 * the bucket per key, forged tokens spending nothing, the metric, and forward auth spending the same bucket.
 */
import t from 'tap'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { makeKey, mintToken } from '../helpers/jwks-server.js'
import { metric, parseMetrics } from '../ops/support.js'

const AUD = 'https://todo.api'

/** `"name";r=1;t=2` into its parts (an RFC 8941 item with integer parameters, as the draft writes it). */
export function parseRateLimitField (value: string | undefined): { name: string, params: Record<string, number> } | null {
  const match = /^"([^"]*)"((?:;[a-z]+=\d+)*)$/.exec(value ?? '')
  if (match === null) return null
  const params: Record<string, number> = {}
  for (const [, k, v] of (match[2] ?? '').matchAll(/;([a-z]+)=(\d+)/g)) params[k as string] = Number(v)
  return { name: match[1] as string, params }
}

t.test('rate limits: memory store', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  let now = Date.now()
  const gw = await startGateway({
    server: { trustProxy: ['127.0.0.1'] },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { todo: { url: echo.url } },
    routes: [
      { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo', rateLimit: { limit: 2, window: '10s', key: ['route', 'subject'] } },
      { id: 'once', match: { path: '/once', prefix: true }, upstream: 'todo', rateLimit: { limit: 1, window: '1m', key: ['subject'] } },
      { id: 'free', match: { path: '/free', prefix: true }, upstream: 'todo' }
    ]
  }, { now: () => now })
  t.teardown(() => gw.close())

  const mint = async (sub: string): Promise<string> => await mintToken(key, { iss: jwks.issuer, aud: AUD, sub, client_id: 'web', scope: 'read:todos' })
  const alice = await mint('alice')
  const bob = await mint('bob')

  t.test('within the limit the upstream is reached; past it, 429 with the fields and nothing upstream', async (t) => {
    const before = echo.received.length
    for (let i = 0; i < 2; i++) t.equal((await send(gw.proxyUrl, '/todos', { headers: bearer(alice) })).status, 200)
    t.equal(echo.received.length, before + 2)
    const res = await send(gw.proxyUrl, '/todos', { headers: bearer(alice) })
    t.equal(res.status, 429)
    t.strictSame(res.json, { error: 'rate_limited', error_description: 'too many requests; retry later' })
    t.equal(res.headers['cache-control'], 'no-store')
    t.equal(res.headers['retry-after'], '5', 'one interval: 10 s / 2')
    t.strictSame(parseRateLimitField(res.headers['ratelimit-policy'] as string), { name: 'todos', params: { q: 2, w: 10 } })
    t.strictSame(parseRateLimitField(res.headers.ratelimit as string), { name: 'todos', params: { r: 0, t: 10 } })
    t.equal(res.headers['www-authenticate'], undefined, 'no challenge: the credentials were fine')
    t.equal(echo.received.length, before + 2, 'the refused request cost no upstream traffic')
    t.notOk(res.body.includes(alice), 'the token is never echoed')

    t.equal((await send(gw.proxyUrl, '/todos', { headers: bearer(bob) })).status, 200, 'another subject has its own bucket')
    t.equal((await send(gw.proxyUrl, '/free', { headers: bearer(alice) })).status, 200, 'a route without a limit is not limited')
    now += 5000
    t.equal((await send(gw.proxyUrl, '/todos', { headers: bearer(alice) })).status, 200, 'allowed again once Retry-After has passed')
    t.equal(echo.received.at(-1)?.headers['x-auth-subject'], 'alice')
  })

  t.test('forged and unknown tokens naming a victim spend nothing of her bucket', async (t) => {
    const stranger = await makeKey('ES256', 'not-published')
    const forged = await mintToken(stranger, { iss: jwks.issuer, aud: AUD, sub: 'carol', client_id: 'web' })
    for (let i = 0; i < 5; i++) t.equal((await send(gw.proxyUrl, '/once', { headers: bearer(forged) })).status, 401)
    for (let i = 0; i < 3; i++) t.equal((await send(gw.proxyUrl, '/once', {})).status, 401, 'no token: 401 before any limit')
    const before = echo.received.length
    const carol = await mint('carol')
    t.equal((await send(gw.proxyUrl, '/once', { headers: bearer(carol) })).status, 200, 'carol still has her one request')
    t.equal((await send(gw.proxyUrl, '/once', { headers: bearer(carol) })).status, 429)
    t.equal(echo.received.length, before + 1)
  })

  t.test('forward auth spends the same bucket; its allow is never cacheable; a limit is a 403 rate_limited', async (t) => {
    const dave = await mint('dave')
    const call = async (): Promise<Awaited<ReturnType<typeof send>>> =>
      await send(gw.adminUrl, '/decisions', { headers: { ...bearer(dave), 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/once' } })
    const before = echo.received.length
    const allowed = await call()
    t.equal(allowed.status, 200)
    t.equal(allowed.headers['x-auth-subject'], 'dave')
    t.equal(allowed.headers['cache-control'], 'no-store', 'an ingress must ask again for each request')
    const limited = await call()
    t.equal(limited.status, 403, 'ingresses read only 401 and 403')
    t.equal(limited.json?.error, 'rate_limited')
    t.equal(limited.headers['retry-after'], '60')
    t.strictSame(parseRateLimitField(limited.headers.ratelimit as string), { name: 'once', params: { r: 0, t: 60 } })
    t.match(limited.headers['www-authenticate'], /error="rate_limited"/)
    t.equal((await send(gw.proxyUrl, '/once', { headers: bearer(dave) })).status, 429, 'the proxy listener shares the bucket')
    t.equal(echo.received.length, before, 'forward auth proxies nothing, and the refused proxy request reached nothing')
  })

  t.test('limited requests are counted in requests_total with reason rate_limited, and logged', async (t) => {
    const samples = parseMetrics((await send(gw.adminUrl, '/metrics')).body)
    t.equal(metric(samples, 'scopegate_requests_total', { route: 'todos', decision: 'deny', reason: 'rate_limited' }), 1)
    t.equal(metric(samples, 'scopegate_requests_total', { route: 'once', decision: 'deny', reason: 'rate_limited' }), 3, 'carol, dave by proxy, dave by forward auth')
    t.equal(metric(samples, 'scopegate_redis_connected'), undefined, 'no redis section: no redis gauge')
    const line = gw.decisions().find((l) => l.reason === 'rate_limited')
    t.equal(line?.status, 429)
    t.notOk(gw.rawLog().includes(alice), 'no token in the log')
  })
})
