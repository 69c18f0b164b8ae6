/**
 * Keys that keep working, end to end: a real gateway on port 0 in front of a real echo upstream, its
 * issuers served by JWKS servers the test controls (and the real oidc-provider for rotation). The
 * gateway's clock is a variable the test moves, so refreshInterval, cooldown and maxStale are crossed
 * without sleeping. Every case asserts what the client received and how many fetches the JWKS server saw.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import type { Test } from 'tap'
import { startEcho } from '../helpers/echo-upstream.js'
import { compileTestConfig, startGateway, type TestGateway } from '../helpers/gateway.js'
import { bearer, send, type TestResponse } from '../helpers/http.js'
import { startIdp } from '../helpers/idp.js'
import { makeKey, mintToken, startJwksServer, type JwksServer, type TestKey } from '../helpers/jwks-server.js'

const AUD = 'https://api.test'
const SEC = 1000
const MIN = 60 * SEC
const HOUR = 60 * MIN
const WARN = 40
const INFO = 30

const echo = await startEcho()
t.teardown(() => echo.close())

function issuerConfig (server: JwksServer, id = 'a', jwks: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, issuer: server.issuer, jwksUri: server.url, algorithms: ['ES256'], audiences: [AUD], jwks }
}

function gatewayConfig (issuers: Array<Record<string, unknown>>, routes: Array<Record<string, unknown>> = []): Record<string, unknown> {
  return {
    issuers,
    upstreams: { api: { url: echo.url } },
    routes: [{ id: 'api', match: { path: '/api', prefix: true }, upstream: 'api' }, ...routes]
  }
}

interface Rig {
  gw: TestGateway
  clock: { now: number }
  /** Fetches the gateway has finished, as `issuer:what:result`. */
  fetched: string[]
}

/** A gateway whose clock is `clock.now`, torn down with the test. */
async function rig (t: Test, config: Record<string, unknown>): Promise<Rig> {
  // Whole seconds, so a token's iat/exp (seconds) line up exactly with the gateway's clock.
  const clock = { now: Math.floor(Date.now() / 1000) * 1000 }
  const fetched: string[] = []
  const gw = await startGateway(config, {
    now: () => clock.now,
    keyEvents: { fetched: (id, result, what) => { fetched.push(`${id}:${what}:${result}`) } }
  })
  t.teardown(() => gw.close())
  return { gw, clock, fetched }
}

/** A fresh token (unique jti, so never a cache hit) issued at the gateway's current time. */
function token (r: Rig, key: TestKey, server: { issuer: string }, claims: Record<string, unknown> = {}, expiresIn = 3 * 24 * 3600): Promise<string> {
  return mintToken(key, { iss: server.issuer, aud: AUD, sub: 'alice', scope: 'read write', jti: randomUUID(), ...claims },
    { iat: Math.floor(r.clock.now / 1000), expiresIn })
}

function get (r: Rig, tok: string, path = '/api/items'): Promise<TestResponse> {
  return send(r.gw.proxyUrl, path, { headers: bearer(tok) })
}

/** Polls `cond` every 5 ms. */
async function waitFor (cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  await new Promise((resolve) => setImmediate(resolve))
}

/** Sends `total` requests, `concurrency` at a time. */
async function flood (total: number, concurrency: number, one: (i: number) => Promise<TestResponse>): Promise<TestResponse[]> {
  const out: TestResponse[] = []
  for (let i = 0; i < total; i += concurrency) {
    out.push(...await Promise.all(Array.from({ length: Math.min(concurrency, total - i) }, (_, j) => one(i + j))))
  }
  return out
}

function logsWith (r: Rig, msg: string | RegExp): Array<Record<string, unknown>> {
  return r.gw.logs.filter((l) => typeof l.msg === 'string' && (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)))
}

/** Two issuers' keys and JWKS servers: `slow` (issuer a) for the test to break, `fine` (issuer b) to stay healthy. */
async function slowAndFine (t: Test): Promise<{ keyA: TestKey, keyB: TestKey, slow: JwksServer, fine: JwksServer }> {
  const keyA = await makeKey('ES256')
  const keyB = await makeKey('ES256')
  const slow = await startJwksServer([keyA])
  const fine = await startJwksServer([keyB])
  t.teardown(() => slow.close())
  t.teardown(() => fine.close())
  return { keyA, keyB, slow, fine }
}

async function readyz (r: Rig): Promise<TestResponse> {
  return send(r.gw.adminUrl, '/readyz')
}

function expectUnavailable (t: Test, res: TestResponse, retryAfter: string): void {
  t.equal(res.status, 503)
  t.equal(res.json?.error, 'temporarily_unavailable')
  t.equal(res.headers['retry-after'], retryAfter, `Retry-After ${retryAfter}`)
  t.equal(res.headers['cache-control'], 'no-store')
}

function expectInvalidToken (t: Test, res: TestResponse): void {
  t.equal(res.status, 401)
  t.equal(res.json?.error, 'invalid_token')
  t.match(res.headers['www-authenticate'], /^Bearer realm="scopegate", error="invalid_token"/)
}

/* ------------------------------------------------------------------ outages ------------------------------------------------------------------ */

t.test('IdP down at start-up, then back: 503 + Retry-After and /readyz 503, then 200', async (t) => {
  const key = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  jwks.setMode('down')
  const r = await rig(t, gatewayConfig([issuerConfig(jwks)]))
  t.equal(jwks.fetches, 1, 'start-up fetched once')

  let ready = await readyz(r)
  t.equal(ready.status, 503)
  t.equal(ready.json?.status, 'not_ready')
  t.match(ready.json?.issuers, [{ issuer: 'a', state: 'unavailable', keys: 0, lastError: /answered HTTP 503/ }])

  const before = echo.received.length
  const denied = await flood(20, 10, async () => get(r, await token(r, key, jwks)))
  for (const res of denied) expectUnavailable(t, res, '30')
  t.equal(echo.received.length, before, 'the upstream received nothing')
  t.equal(jwks.fetches, 1, '20 requests within the cooldown: no fetch')

  jwks.setMode('ok')
  r.clock.now += 10 * SEC
  expectUnavailable(t, await get(r, await token(r, key, jwks)), '20')
  t.equal(jwks.fetches, 1, 'still within the cooldown')

  r.clock.now += 20 * SEC
  const ok = await get(r, await token(r, key, jwks))
  t.equal(ok.status, 200, 'the IdP is back: the next request after the cooldown fetches and passes')
  t.equal(echo.received.at(-1)?.headers['x-auth-subject'], 'alice')
  t.equal(jwks.fetches, 2)
  ready = await readyz(r)
  t.equal(ready.status, 200)
  t.match(ready.json?.issuers, [{ issuer: 'a', state: 'ready', keys: 1, lastError: null }])
  t.equal(jwks.fetches, 2)

  t.match(logsWith(r, 'JWKS fetch failed'), [{ level: WARN, issuer: 'a', url: jwks.url, error: 'status: answered HTTP 503', usingStaleKeys: false }])
  t.match(logsWith(r, /^issuer keys/), [
    { level: WARN, msg: 'issuer keys unavailable: tokens of this issuer get 503', issuer: 'a', state: 'unavailable', previous: 'starting' },
    { level: INFO, msg: 'issuer keys ready', issuer: 'a', state: 'ready', previous: 'unavailable' }
  ])
})

t.test('IdP down at start-up, no traffic: the readiness probe alone brings the gateway up', async (t) => {
  const key = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  jwks.setMode('refuse')
  const r = await rig(t, gatewayConfig([issuerConfig(jwks)]))
  t.match((await readyz(r)).json?.issuers, [{ state: 'unavailable', lastError: /^network: / }])
  t.equal(jwks.fetches, 1)
  jwks.setMode('ok')
  r.clock.now += 30 * SEC
  t.equal((await readyz(r)).status, 503, 'the probe answers at once and starts a retry')
  await waitFor(() => r.fetched.length === 2, 'the retry')
  t.equal(jwks.fetches, 2)
  t.equal((await readyz(r)).status, 200)
  t.equal((await get(r, await token(r, key, jwks))).status, 200)
  t.equal(jwks.fetches, 2)
})

t.test('IdP down mid-run for longer than refreshInterval: known kids pass until maxStale, then 503', async (t) => {
  const key = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  const r = await rig(t, gatewayConfig([issuerConfig(jwks, 'a', { refreshInterval: '10m', cooldown: '30s', maxStale: '24h' })]))
  const cached = await token(r, key, jwks)
  t.equal((await get(r, cached)).status, 200)
  t.equal(jwks.fetches, 1)

  jwks.setMode('down')
  r.clock.now += 11 * MIN
  t.equal((await get(r, await token(r, key, jwks))).status, 200, 'past refreshInterval: revalidation fails, the last good keys serve')
  t.equal(jwks.fetches, 2)
  const failedAt = r.clock.now
  let ready = await readyz(r)
  t.equal(ready.status, 200, 'stale keys are usable keys: still ready')
  t.match(ready.json?.issuers, [{ state: 'stale', keys: 1, failingForSeconds: 0, lastError: /HTTP 503/ }])

  const burst = await flood(30, 10, async () => get(r, await token(r, key, jwks)))
  t.ok(burst.every((res) => res.status === 200), '30 more requests pass')
  t.equal(jwks.fetches, 2, 'and cost no fetch (cooldown)')

  r.clock.now = failedAt + 12 * HOUR
  t.equal((await get(r, await token(r, key, jwks))).status, 200)
  await waitFor(() => r.fetched.length === 3, 'the background retry')
  t.equal(jwks.fetches, 3, 'one background retry, the request did not wait for it')

  r.clock.now = failedAt + 24 * HOUR - 10 * SEC
  t.equal((await get(r, await token(r, key, jwks))).status, 200, 'just inside maxStale')
  t.equal((await get(r, cached)).status, 200, 'cached tokens too')
  await waitFor(() => r.fetched.length === 4, 'the background retry')
  t.equal(jwks.fetches, 4)

  r.clock.now = failedAt + 24 * HOUR + 1 * SEC
  expectUnavailable(t, await get(r, await token(r, key, jwks)), '19')
  expectUnavailable(t, await get(r, cached), '19')
  t.equal(jwks.fetches, 4, 'the last attempt was 11 s ago: no fetch')
  ready = await readyz(r)
  t.equal(ready.status, 503)
  t.match(ready.json?.issuers, [{ state: 'unavailable', keys: 1, failingForSeconds: 24 * 3600 + 1 }])

  r.clock.now += 19 * SEC
  expectUnavailable(t, await get(r, await token(r, key, jwks)), '30')
  t.equal(jwks.fetches, 5, 'the cooldown allowed one attempt, which failed')

  jwks.setMode('ok')
  r.clock.now += 30 * SEC
  t.equal((await get(r, await token(r, key, jwks))).status, 200, 'the IdP is back')
  t.equal(jwks.fetches, 6)
  t.equal((await readyz(r)).status, 200)

  t.equal(logsWith(r, 'JWKS fetch failed').length, 4, 'one log line per failed fetch')
  t.match(logsWith(r, /^issuer keys/).map((l) => [l.level, l.state]), [[INFO, 'ready'], [WARN, 'stale'], [WARN, 'unavailable'], [INFO, 'ready']])
})

/* ------------------------------------------------------------------ rotation ------------------------------------------------------------------ */

t.test('key rotation with a real oidc-provider', async (t) => {
  const idp = await startIdp({ clients: [{ clientId: 'app', clientSecret: 's' }], resources: { [AUD]: { scope: 'read' } }, accessTokenTtl: 86_400 })
  t.teardown(() => idp.close())
  const r = await rig(t, gatewayConfig([{ id: 'idp', issuer: idp.issuer, discovery: true, algorithms: ['RS256'], audiences: [AUD], requireTyp: true }]))
  const tokenFor = (): Promise<string> => idp.token({ clientId: 'app', resource: AUD, scope: 'read' })
  t.equal(idp.jwksFetches(), 1)
  const t1 = await tokenFor()
  t.equal((await get(r, t1)).status, 200)
  t.equal(idp.jwksFetches(), 1)

  await t.test('a new kid is accepted after at most one refetch', async (t) => {
    await idp.rotateKeys({ keepOld: true })
    const t2 = await tokenFor()
    // Within the cooldown of the start-up fetch a new kid cannot cause a fetch: it is refused.
    expectInvalidToken(t, await get(r, t2))
    t.equal(idp.jwksFetches(), 1, 'no fetch within the cooldown')
    r.clock.now += 30 * SEC
    t.equal((await get(r, t2)).status, 200, 'after the cooldown: accepted')
    t.equal(idp.jwksFetches(), 2, 'exactly one refetch')
    t.equal((await get(r, t1)).status, 200, 'the old kid is still published and still passes')
    t.equal((await get(r, await tokenFor())).status, 200)
    t.equal(idp.jwksFetches(), 2)
  })

  await t.test('a removed kid is rejected within refreshInterval (under traffic: refresh-ahead)', async (t) => {
    const lastFetch = r.clock.now
    const t2 = await tokenFor()
    t.equal((await get(r, t2)).status, 200)
    await idp.rotateKeys({ keepOld: false })
    const t3 = await tokenFor()
    r.clock.now = lastFetch + 9 * MIN
    t.equal((await get(r, t1)).status, 200, 'at 9 min the cached verification still serves, and a background refresh starts')
    await waitFor(() => r.fetched.filter((f) => f === 'idp:jwks:ok').length === 3, 'the background refresh')
    t.equal(idp.jwksFetches(), 3)
    expectInvalidToken(t, await get(r, t1))
    expectInvalidToken(t, await get(r, t2))
    t.equal((await get(r, t3)).status, 200)
    t.equal(idp.jwksFetches(), 3, 'the removed kids are refused without a fetch')
  })

  await t.test('a removed kid is rejected within refreshInterval (after an idle spell: revalidation)', async (t) => {
    const lastFetch = r.clock.now // the background refresh of the previous step
    const t3 = await tokenFor()
    t.equal((await get(r, t3)).status, 200)
    await idp.rotateKeys({ keepOld: false })
    const t4 = await tokenFor()
    // No request between 90% and 100% of the interval: the first one after it waits for the refetch.
    r.clock.now = lastFetch + 10 * MIN
    expectInvalidToken(t, await get(r, t3))
    t.equal(idp.jwksFetches(), 4, 'the first request after refreshInterval refetched')
    t.equal((await get(r, t4)).status, 200)
    t.equal(idp.jwksFetches(), 4)
  })
})

/* ------------------------------------------------------------------ floods ------------------------------------------------------------------ */

t.test('a random-kid flood: fetches stay bounded by the cooldown', async (t) => {
  const key = await makeKey('ES256')
  const stranger = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  const r = await rig(t, gatewayConfig([issuerConfig(jwks)]))
  const randomKid = async (): Promise<TestResponse> => get(r, await mintToken(stranger, { iss: jwks.issuer, aud: AUD, sub: 'mallory' },
    { iat: Math.floor(r.clock.now / 1000), header: { kid: `random-${randomUUID()}` } }))
  const counts: number[] = []

  await t.test('while the IdP is healthy', async (t) => {
    for (let round = 0; round < 3; round++) {
      const responses = await flood(200, 25, randomKid)
      for (const res of responses) expectInvalidToken(t, res)
      counts.push(jwks.fetches)
      r.clock.now += 30 * SEC
    }
    t.same(counts, [1, 2, 3], '200 random kids per cooldown window: the first window is covered by the start-up fetch, then one fetch per window')
    t.equal((await get(r, await token(r, key, jwks))).status, 200, 'legitimate traffic is unaffected')
    t.equal(jwks.fetches, 3)
  })

  await t.test('while the IdP fails', async (t) => {
    jwks.setMode('refuse')
    const start = jwks.fetches
    for (let round = 0; round < 3; round++) {
      const responses = await flood(200, 25, randomKid)
      for (const res of responses) expectInvalidToken(t, res)
      const legit = await get(r, await token(r, key, jwks))
      t.equal(legit.status, 200, 'known kids keep passing on the last good keys')
      counts.push(jwks.fetches)
      r.clock.now += 30 * SEC
    }
    t.same(counts.slice(3).map((c) => c - start), [1, 2, 3], 'one fetch per cooldown window, not one per request')
    t.comment(`JWKS fetches after each window of 200 random kids: ${counts.join(', ')}`)
  })
})

t.test('a random-kid flood while the IdP has never answered: 503s, one fetch per cooldown', async (t) => {
  const key = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  jwks.setMode('down')
  const r = await rig(t, gatewayConfig([issuerConfig(jwks)]))
  const responses = await flood(200, 25, async () => get(r, await mintToken(key, { iss: jwks.issuer, aud: AUD }, { iat: Math.floor(r.clock.now / 1000), header: { kid: randomUUID() } })))
  for (const res of responses) expectUnavailable(t, res, '30')
  t.equal(jwks.fetches, 1)
  r.clock.now += 30 * SEC
  const next = await flood(200, 25, async () => get(r, await mintToken(key, { iss: jwks.issuer, aud: AUD }, { iat: Math.floor(r.clock.now / 1000), header: { kid: randomUUID() } })))
  for (const res of next) t.equal(res.status, 503)
  t.equal(jwks.fetches, 2, 'one attempt for the next 200')
})

/* ------------------------------------------------------------------ slow JWKS ------------------------------------------------------------------ */

t.test('a slow JWKS times out; other issuers and cached traffic are unaffected', async (t) => {
  const { keyA, keyB, slow, fine } = await slowAndFine(t)
  const r = await rig(t, gatewayConfig([issuerConfig(slow, 'a', { timeout: '1s' }), issuerConfig(fine, 'b')]))
  const cachedA = await token(r, keyA, slow)
  t.equal((await get(r, cachedA)).status, 200)
  t.same([slow.fetches, fine.fetches], [1, 1])

  slow.setMode('hang')
  r.clock.now += 9 * MIN // refresh-ahead: the next uses start background refreshes
  const began = Date.now()
  const [a1, a2, b1] = await Promise.all([get(r, cachedA), get(r, await token(r, keyA, slow)), get(r, await token(r, keyB, fine))])
  const took = Date.now() - began
  t.same([a1.status, a2.status, b1.status], [200, 200, 200])
  t.ok(took < 800, `answered in ${took} ms while issuer a's JWKS hangs (timeout 1 s)`)
  t.equal(slow.fetches, 2, 'the refresh of a is on the wire')

  await waitFor(() => logsWith(r, 'JWKS fetch failed').length === 1, 'the timeout', 3000)
  t.match(logsWith(r, 'JWKS fetch failed')[0], { issuer: 'a', error: 'timeout: no complete answer within 1000 ms', usingStaleKeys: true })
  const ready = await readyz(r)
  t.equal(ready.status, 200)
  t.match(ready.json?.issuers, [{ issuer: 'a', state: 'stale' }, { issuer: 'b', state: 'ready' }])
  const again = Date.now()
  t.same([(await get(r, cachedA)).status, (await get(r, await token(r, keyB, fine))).status], [200, 200])
  t.ok(Date.now() - again < 500, 'still fast')
  t.same([slow.fetches, fine.fetches], [2, 2], 'a: one refresh, timed out; b: its own refresh-ahead')
})

t.test('a JWKS that hangs at start-up: that issuer gets 503 after the timeout, the other is served', async (t) => {
  const { keyA, keyB, slow, fine } = await slowAndFine(t)
  slow.setMode('hang')
  const began = Date.now()
  const r = await rig(t, gatewayConfig([issuerConfig(slow, 'a', { timeout: '500ms' }), issuerConfig(fine, 'b')]))
  const took = Date.now() - began
  t.ok(took >= 450 && took < 3000, `start-up waited for the timeout (${took} ms), not forever`)
  const ready = await readyz(r)
  t.equal(ready.status, 503)
  t.match(ready.json?.issuers, [{ issuer: 'a', state: 'unavailable', lastError: 'timeout: no complete answer within 500 ms' }, { issuer: 'b', state: 'ready' }])
  expectUnavailable(t, await get(r, await token(r, keyA, slow)), '30')
  t.equal((await get(r, await token(r, keyB, fine))).status, 200)
  t.same([slow.fetches, fine.fetches], [1, 1])
})

/* ------------------------------------------------------------------ bad bodies ------------------------------------------------------------------ */

t.test('HTML, garbage and oversized bodies: nothing crashes, a clear log line each, 503 when there are no keys', async (t) => {
  const cases: Array<{ name: string, body: string | Buffer, contentType: string, error: RegExp }> = [
    { name: 'an HTML error page', body: '<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>', contentType: 'text/html', error: /^not_json: body is not JSON \(text\/html, 89 bytes, starts "<!DOCTYPE html><html><head><title>502 Bad Gateway<\/title>/ },
    { name: 'binary garbage', body: Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef]), contentType: 'application/octet-stream', error: /^not_json: body is not JSON \(application\/octet-stream, 8 bytes/ },
    { name: 'JSON that is not a JWKS', body: '{"error":"maintenance"}', contentType: 'application/json', error: /^not_json: JWKS is not an object with a "keys" array$/ },
    { name: 'a JWKS with no usable key', body: JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }] }), contentType: 'application/json', error: /^not_json: JWKS has no usable keys \(1 listed\)$/ },
    { name: 'an oversized body', body: Buffer.alloc(5 * 1024 * 1024, 0x20), contentType: 'application/json', error: /^too_large: body (of 5242880 bytes )?exceeds maxBytes 1048576$/ }
  ]
  for (const c of cases) {
    await t.test(`${c.name}, at start-up`, async (t) => {
      const key = await makeKey('ES256')
      const jwks = await startJwksServer([key])
      t.teardown(() => jwks.close())
      jwks.setMode({ body: c.body, contentType: c.contentType })
      const heapBefore = process.memoryUsage().heapUsed
      const r = await rig(t, gatewayConfig([issuerConfig(jwks)]))
      t.ok(process.memoryUsage().heapUsed - heapBefore < 32 * 1024 * 1024, 'memory stays bounded')
      t.equal(jwks.fetches, 1)
      const ready = await readyz(r)
      t.equal(ready.status, 503)
      t.match(ready.json?.issuers, [{ state: 'unavailable', lastError: c.error }])
      expectUnavailable(t, await get(r, await token(r, key, jwks)), '30')
      t.equal((await send(r.gw.adminUrl, '/healthz')).status, 200, 'the gateway is alive')
      const lines = logsWith(r, 'JWKS fetch failed')
      t.equal(lines.length, 1, 'one log line')
      t.match(lines[0], { level: WARN, issuer: 'a', url: jwks.url, error: c.error })
      t.equal(jwks.fetches, 1)
    })

    await t.test(`${c.name}, mid-run: the last good keys keep serving`, async (t) => {
      const key = await makeKey('ES256')
      const jwks = await startJwksServer([key])
      t.teardown(() => jwks.close())
      const r = await rig(t, gatewayConfig([issuerConfig(jwks)]))
      jwks.setMode({ body: c.body, contentType: c.contentType })
      r.clock.now += 11 * MIN
      t.equal((await get(r, await token(r, key, jwks))).status, 200)
      t.equal(jwks.fetches, 2)
      t.match((await readyz(r)).json?.issuers, [{ state: 'stale', keys: 1, lastError: c.error }])
      t.match(logsWith(r, 'JWKS fetch failed'), [{ issuer: 'a', error: c.error, usingStaleKeys: true }])
    })
  }
})

t.test('a JWKS that lists two keys with the same kid: no 500, tokens of either key pass', async (t) => {
  const first = await makeKey('ES256', 'dup')
  const second = await makeKey('ES256', 'dup')
  const stranger = await makeKey('ES256', 'dup')
  const jwks = await startJwksServer([first, second])
  t.teardown(() => jwks.close())
  const r = await rig(t, gatewayConfig([issuerConfig(jwks)]))
  t.equal((await get(r, await token(r, first, jwks))).status, 200)
  t.equal((await get(r, await token(r, second, jwks))).status, 200)
  expectInvalidToken(t, await get(r, await token(r, stranger, jwks)))
  t.equal(jwks.fetches, 1)
})

/* ------------------------------------------------------------------ nothing fetched because of a token ------------------------------------------------------------------ */

t.test('jku, x5u and jwk headers and unconfigured issuers are never fetched', async (t) => {
  const key = await makeKey('ES256')
  const attacker = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  const trap = await startJwksServer([attacker])
  t.teardown(() => jwks.close())
  t.teardown(() => trap.close())
  const r = await rig(t, gatewayConfig([issuerConfig(jwks)]))
  const headers = [{ jku: trap.url }, { x5u: `${trap.issuer}/cert.pem` }, { jwk: attacker.publicJwk }, { jku: trap.url, jwk: attacker.publicJwk, x5u: trap.url }]
  for (const header of headers) {
    expectInvalidToken(t, await get(r, await mintToken(attacker, { iss: jwks.issuer, aud: AUD, sub: 'mallory' }, { iat: Math.floor(r.clock.now / 1000), header })))
    t.equal((await get(r, await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', jti: randomUUID() }, { iat: Math.floor(r.clock.now / 1000), header }))).status,
      200, 'a genuine token carrying the header passes: the header is ignored')
  }
  expectInvalidToken(t, await get(r, await mintToken(attacker, { iss: trap.issuer, aud: AUD, sub: 'mallory' }, { iat: Math.floor(r.clock.now / 1000) })))
  t.same([trap.fetches, trap.discoveryFetches], [0, 0], 'the trap server was never contacted')
  t.equal(jwks.fetches, 1)
})

/* ------------------------------------------------------------------ verified-token cache ------------------------------------------------------------------ */

t.test('verified-token cache', async (t) => {
  const k1 = await makeKey('ES256', 'k1')
  const k2 = await makeKey('ES256', 'k2')
  const k3 = await makeKey('ES256', 'k3')
  const jwks = await startJwksServer([k1, k2])
  const other = await startJwksServer([k3])
  t.teardown(() => jwks.close())
  t.teardown(() => other.close())
  const r = await rig(t, gatewayConfig([issuerConfig(jwks), issuerConfig(other, 'b')], [
    { id: 'read', match: { path: '/read' }, upstream: 'api', policy: { scopes: { require: ['read'] } } },
    { id: 'admin', match: { path: '/admin' }, upstream: 'api', policy: { scopes: { require: ['admin'] } } },
    { id: 'only-b', match: { path: '/only-b' }, upstream: 'api', policy: { issuers: ['b'] } }
  ]))
  const cache = (): { hits: number, size: number } => ({ hits: r.gw.gateway.current().tokenCache.hits, size: r.gw.gateway.current().tokenCache.size })

  await t.test('only the verification is cached: the route decision is made afresh', async (t) => {
    const tok = await token(r, k1, jwks, { scope: 'read' })
    const hits = cache().hits
    t.equal((await get(r, tok, '/read')).status, 200)
    const admin = await get(r, tok, '/admin')
    t.equal(admin.status, 403)
    t.equal(admin.json?.error, 'insufficient_scope')
    t.match(admin.headers['www-authenticate'], /scope="admin"/)
    const onlyB = await get(r, tok, '/only-b')
    t.equal(onlyB.status, 401)
    t.equal(onlyB.json?.error, 'invalid_token')
    t.equal((await get(r, tok, '/read')).status, 200)
    t.equal(cache().hits - hits, 3, 'the three later requests were cache hits, yet each was judged by its own route')
    t.equal(echo.received.at(-1)?.headers['x-auth-route'], 'read')
    t.same([jwks.fetches, other.fetches], [1, 1])
  })

  await t.test('exp is checked again on every read', async (t) => {
    const tok = await token(r, k1, jwks, {}, 60)
    t.equal((await get(r, tok)).status, 200)
    r.clock.now += 90 * SEC - 1 // a millisecond before exp + the default 30 s clock tolerance
    t.equal((await get(r, tok)).status, 200, 'just before exp + tolerance: from the cache')
    r.clock.now += 1 // at exp + tolerance: now must be before exp (RFC 7519 §4.1.4)
    const res = await get(r, tok)
    expectInvalidToken(t, res)
    t.match(r.gw.decisions().at(-1), { reason: 'token_expired' })
    t.same([jwks.fetches, other.fetches], [1, 1])
  })

  await t.test('an entry is dropped when its key leaves the JWKS', async (t) => {
    const tok = await token(r, k1, jwks)
    t.equal((await get(r, tok)).status, 200)
    t.equal((await get(r, tok)).status, 200)
    const hits = cache().hits
    // k1 is retired, k4 appears; a token signed by k4 makes the gateway refetch (the cooldown has passed).
    const k4 = await makeKey('ES256', 'k4')
    jwks.setKeys([k2, k4])
    r.clock.now += 30 * SEC
    t.equal((await get(r, await token(r, k4, jwks))).status, 200)
    t.equal(jwks.fetches, 2)
    expectInvalidToken(t, await get(r, tok))
    t.match(r.gw.decisions().at(-1), { reason: 'token_key_unknown' })
    t.equal(cache().hits, hits, 'not served from the cache')
    t.equal(jwks.fetches, 2, 'and no further fetch')
  })
})

/* ------------------------------------------------------------------ reload ------------------------------------------------------------------ */

t.test('a reload does not refetch keys whose source is unchanged', async (t) => {
  const key = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  const config = gatewayConfig([issuerConfig(jwks)])
  const r = await rig(t, config)
  t.equal(jwks.fetches, 1)

  r.gw.gateway.reload(compileTestConfig(config))
  t.equal((await readyz(r)).status, 200, 'ready at once')
  t.equal((await get(r, await token(r, key, jwks))).status, 200)
  t.equal(jwks.fetches, 1, 'same config: no fetch')

  r.gw.gateway.reload(compileTestConfig(gatewayConfig([{ ...issuerConfig(jwks), audiences: [AUD, 'https://other.test'] }],
    [{ id: 'more', match: { path: '/more' }, upstream: 'api' }])))
  t.equal((await get(r, await token(r, key, jwks), '/more')).status, 200)
  t.equal(jwks.fetches, 1, 'other routes and audiences: no fetch')

  r.gw.gateway.reload(compileTestConfig(gatewayConfig([issuerConfig(jwks, 'a', { cooldown: '5s', timeout: '2s' })])))
  t.equal((await readyz(r)).status, 200)
  t.equal((await get(r, await token(r, key, jwks))).status, 200)
  t.equal(jwks.fetches, 1, 'other jwks options: the keys are adopted, no fetch')

  r.gw.gateway.reload(compileTestConfig(gatewayConfig([{ ...issuerConfig(jwks), jwksUri: `${jwks.url}?v=2` }])))
  await waitFor(() => jwks.fetches === 2, 'the new key source to be fetched')
  t.equal((await get(r, await token(r, key, jwks))).status, 200)
  t.equal(jwks.fetches, 2, 'a new key source is fetched once')
})
