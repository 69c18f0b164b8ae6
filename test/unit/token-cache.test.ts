/**
 * The verified-token cache on its own (bounds, lifetime, exp re-checked on read with the injected clock)
 * and through the verifier (entries whose key left the JWKS are dropped, keys that are unusable are not
 * bypassed by the cache, failures are never cached). No sleeping: the clock is a variable.
 */
import t from 'tap'
import type { CompiledIssuer } from '../../src/config/types.js'
import { GatewayError, deny } from '../../src/shared/errors.js'
import { denial } from '../helpers/denial.js'
import type { FetchLike } from '../../src/keys/fetch-json.js'
import { KeyStore } from '../../src/keys/key-store.js'
import type { KeyEntry } from '../../src/keys/import-jwk.js'
import { FAILURE_CACHE_DEFAULTS, FailureCache, TOKEN_CACHE_DEFAULTS, TokenCache, type TokenCacheOptions } from '../../src/token/token-cache.js'
import { TokenMiss, TokenVerifier, type VerifiedToken } from '../../src/token/verify-token.js'
import { compileTestConfig } from '../helpers/gateway.js'
import { makeKey, mintToken, type TestKey } from '../helpers/jwks-server.js'

const ISS = 'https://idp.test'
const AUD = 'https://api.test'
const T0 = 1_700_000_000_000

const config = compileTestConfig({
  issuers: [{ id: 'idp', issuer: ISS, jwksUri: `${ISS}/jwks`, algorithms: ['ES256'], audiences: [AUD], clockTolerance: '30s' }],
  upstreams: { api: { url: 'http://127.0.0.1:9' } },
  routes: [{ id: 'api', match: { path: '/api', prefix: true }, upstream: 'api' }]
})
const issuer = config.issuersById.get('idp') as CompiledIssuer

function verified (expiresAt: number, size = 100): VerifiedToken {
  return {
    subject: 'alice',
    clientId: 'app',
    scopes: ['read'],
    roles: [],
    audiences: [AUD],
    issuer,
    claims: { exp: expiresAt },
    expiresAt,
    key: {} as KeyEntry,
    size,
    digest: 'tok',
    jkt: null,
    x5t: null
  }
}

function cache (clock: { now: number }, options: Partial<Omit<TokenCacheOptions, 'now'>> = {}): TokenCache {
  return new TokenCache({ ...TOKEN_CACHE_DEFAULTS, ...options, now: () => clock.now })
}

t.test('defaults are bounded by entries, bytes and lifetime', async (t) => {
  t.same(TOKEN_CACHE_DEFAULTS, { maxEntries: 10_000, maxBytes: 64 * 1024 * 1024, maxTtlMs: 10 * 60_000 })
})

t.test('a hit returns the verification; counters count', async (t) => {
  const clock = { now: T0 }
  const c = cache(clock)
  const v = verified(T0 / 1000 + 300)
  t.equal(c.get('tok'), undefined)
  c.set('tok', v)
  t.equal(c.get('tok'), v)
  t.equal(c.get('tok'), v)
  t.same([c.hits, c.misses, c.size], [2, 1, 1])
})

t.test('exp is checked again on every read, with the issuer clock tolerance', async (t) => {
  const clock = { now: T0 }
  const c = cache(clock)
  c.set('tok', verified(T0 / 1000 + 60))
  clock.now = T0 + 89_999
  t.ok(c.get('tok'), 'one millisecond before exp + tolerance: still good')
  clock.now = T0 + 90_000
  t.equal(c.get('tok'), undefined, 'at exp + tolerance: gone (now must be before exp, RFC 7519 §4.1.4)')
  t.equal(c.size, 0, 'and removed')
})

t.test('an entry lives no longer than maxTtl, whatever its exp', async (t) => {
  const clock = { now: T0 }
  const c = cache(clock, { maxTtlMs: 60_000 })
  c.set('tok', verified(T0 / 1000 + 86_400))
  clock.now = T0 + 60_000
  t.ok(c.get('tok'))
  clock.now = T0 + 60_001
  t.equal(c.get('tok'), undefined)
})

t.test('a token already past exp + tolerance is not stored', async (t) => {
  const clock = { now: T0 }
  const c = cache(clock)
  c.set('tok', verified(T0 / 1000 - 31))
  t.equal(c.size, 0)
})

t.test('bounded by entries: the least recently used goes first', async (t) => {
  const clock = { now: T0 }
  const c = cache(clock, { maxEntries: 3 })
  for (const tok of ['a', 'b', 'c']) c.set(tok, verified(T0 / 1000 + 300))
  c.get('a')
  c.set('d', verified(T0 / 1000 + 300))
  t.equal(c.size, 3)
  t.equal(c.get('b'), undefined, 'b was the least recently used')
  t.ok(c.get('a'))
  t.ok(c.get('d'))
})

t.test('bounded by bytes; an entry over 1/16 of the budget is not stored at all', async (t) => {
  const clock = { now: T0 }
  const c = cache(clock, { maxBytes: 16 * 1024 })
  for (let i = 0; i < 50; i++) c.set(`token-${i}`, verified(T0 / 1000 + 300, 1000))
  t.ok(c.size <= 16, `${c.size} entries of ~1 KiB in a 16 KiB budget`)
  t.ok(c.get('token-49'), 'the newest is kept')
  c.set('huge', verified(T0 / 1000 + 300, 2000))
  t.equal(c.get('huge'), undefined, 'over 1 KiB (1/16 of 16 KiB): not cached')
})

/* ------------------------------------------------------------------ through the verifier ------------------------------------------------------------------ */

interface Rig {
  clock: { now: number }
  published: TestKey[]
  fetches: () => number
  mode: { down: boolean }
  verifier: TokenVerifier
  tokenCache: TokenCache
  store: KeyStore
}

async function rig (keys: TestKey[]): Promise<Rig> {
  const clock = { now: T0 }
  const state = { published: keys, calls: 0, mode: { down: false } }
  const fetch: FetchLike = async () => {
    state.calls++
    if (state.mode.down) return new Response('down', { status: 503 })
    return new Response(JSON.stringify({ keys: state.published.map((k) => k.publicJwk) }), { headers: { 'content-type': 'application/json' } })
  }
  const store = new KeyStore(issuer, { fetch, now: () => clock.now })
  await store.refresh()
  const tokenCache = cache(clock)
  const verifier = new TokenVerifier(config, new Map([['idp', store]]), tokenCache, () => clock.now)
  return {
    clock,
    get published () { return state.published },
    set published (next: TestKey[]) { state.published = next },
    fetches: () => state.calls,
    mode: state.mode,
    verifier,
    tokenCache,
    store
  }
}

const claims = { iss: ISS, aud: AUD, sub: 'alice', scope: 'read' }
const iat = T0 / 1000

t.test('verifier: a cached verification is dropped once its key has left the JWKS', async (t) => {
  const k1 = await makeKey('ES256', 'k1')
  const k2 = await makeKey('ES256', 'k2')
  const r = await rig([k1])
  const token = await mintToken(k1, claims, { iat, expiresIn: 3600 })
  await r.verifier.verify(token)
  await r.verifier.verify(token)
  t.same([r.tokenCache.hits, r.tokenCache.size], [1, 1], 'the second verification came from the cache')

  // The IdP rotates k1 out; a token signed by the new key makes the store refetch (cooldown has passed).
  r.published = [k2]
  r.clock.now += 30_000
  await r.verifier.verify(await mintToken(k2, claims, { iat, expiresIn: 3600 }))
  t.equal(r.fetches(), 2)

  const err = await denial(r.verifier.verify(token))
  t.match(err, { status: 401, code: 'invalid_token', reason: 'token_key_unknown' })
  t.equal(r.tokenCache.hits, 1, 'no further hit: the entry was dropped, not served')
  t.equal(r.fetches(), 2, 'k1 is a known miss within the cooldown: no fetch')
})

t.test('verifier: a refresh that returns the same keys keeps cached verifications', async (t) => {
  const k1 = await makeKey('ES256', 'k1')
  const r = await rig([k1])
  const token = await mintToken(k1, claims, { iat, expiresIn: 3600 })
  await r.verifier.verify(token)
  r.clock.now += 9 * 60_000 // refresh-ahead: the next use refreshes in the background
  await r.verifier.verify(token)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(r.fetches(), 2)
  await r.verifier.verify(token)
  t.equal(r.tokenCache.hits, 2, 'still served from the cache after the refresh')
})

t.test('verifier: the cache never outlives the keys: past maxStale a cached token gets 503 too', async (t) => {
  const k1 = await makeKey('ES256', 'k1')
  const r = await rig([k1])
  const token = await mintToken(k1, claims, { iat, expiresIn: 3 * 86_400 })
  await r.verifier.verify(token)
  r.mode.down = true
  r.clock.now += 9 * 60_000
  await r.verifier.verify(token) // cached; starts a background refresh that fails
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(r.store.status().state, 'stale')
  const failedAt = r.clock.now
  r.clock.now = failedAt + 24 * 3_600_000
  await r.verifier.verify(token)
  r.clock.now = failedAt + 24 * 3_600_000 + 60_000
  t.match(await denial(r.verifier.verify(token)), { status: 503, code: 'temporarily_unavailable' })
})

t.test('verifier: failures are not cached; exp is re-checked for cached tokens', async (t) => {
  const k1 = await makeKey('ES256', 'k1')
  const other = await makeKey('ES256', 'k1') // same kid, different key: a forged signature
  const r = await rig([k1])
  const forged = await mintToken(other, claims, { iat, expiresIn: 3600 })
  t.match(await denial(r.verifier.verify(forged)), { reason: 'token_signature_invalid' })
  t.equal(r.tokenCache.size, 0)

  const token = await mintToken(k1, claims, { iat, expiresIn: 60 })
  await r.verifier.verify(token)
  t.equal(r.tokenCache.size, 1)
  r.clock.now += 90_001
  t.match(await denial(r.verifier.verify(token)), { status: 401, reason: 'token_expired' })
  t.equal(r.fetches(), 1)
})

t.test('verifier: a JWKS that lists the same kid twice verifies tokens of either key', async (t) => {
  const a = await makeKey('ES256', 'dup')
  const b = await makeKey('ES256', 'dup')
  const r = await rig([a, b])
  t.equal((await r.verifier.verify(await mintToken(a, claims, { iat }))).subject, 'alice')
  t.equal((await r.verifier.verify(await mintToken(b, claims, { iat }))).subject, 'alice')
  const stranger = await makeKey('ES256', 'dup')
  t.match(await denial(r.verifier.verify(await mintToken(stranger, claims, { iat }))), { status: 401, reason: 'token_signature_invalid' })
})

t.test('verifier: jku, x5u and jwk headers are ignored, never fetched', async (t) => {
  const k1 = await makeKey('ES256', 'k1')
  const attacker = await makeKey('ES256', 'k1')
  const r = await rig([k1])
  const header = { jku: 'https://evil.test/jwks', x5u: 'https://evil.test/cert', jwk: attacker.publicJwk }
  const forged = await mintToken(attacker, claims, { iat, header })
  t.match(await denial(r.verifier.verify(forged)), { reason: 'token_signature_invalid' }, 'the embedded key is not used')
  const genuine = await mintToken(k1, claims, { iat, header })
  t.equal((await r.verifier.verify(genuine)).subject, 'alice', 'the headers are ignored, the configured key decides')
  t.equal(r.fetches(), 1, 'only the configured JWKS was ever fetched')
})

t.test('failure cache: settled failures are remembered for ttl; failures that may change are never stored', async (t) => {
  const clock = { now: T0 }
  const failures = new FailureCache({ ...FAILURE_CACHE_DEFAULTS, now: () => clock.now })
  t.same(FAILURE_CACHE_DEFAULTS, { maxEntries: 10_000, ttlMs: 60_000 })
  const settled = [
    deny.invalidToken('token_signature_invalid', 'bad signature'),
    deny.invalidToken('token_expired', 'expired'),
    deny.invalidToken('token_malformed', 'malformed'),
    deny.invalidToken('token_issuer_unknown', 'unknown issuer')
  ]
  const open = [
    deny.invalidToken('token_key_unknown', 'unknown kid: may appear after a refetch'),
    deny.invalidToken('token_not_yet_valid', 'becomes valid later'),
    deny.keysUnavailable(5)
  ]
  settled.forEach((err, i) => failures.set(`settled-${i}`, err))
  open.forEach((err, i) => failures.set(`open-${i}`, err))
  settled.forEach((err, i) => t.equal(failures.get(`settled-${i}`), err, `${err.reason} is remembered`))
  open.forEach((err, i) => t.equal(failures.get(`open-${i}`), undefined, `${err.reason} is not`))
  clock.now += 60_001
  t.equal(failures.get('settled-0'), undefined, 'gone after ttl')
})

t.test('verifier with a failure cache: a bad signature is checked once, then answered from the cache', async (t) => {
  const k1 = await makeKey('ES256', 'k1')
  const other = await makeKey('ES256', 'k1')
  const r = await rig([k1])
  const failures = new FailureCache({ ...FAILURE_CACHE_DEFAULTS, now: () => r.clock.now })
  let lookups = 0
  const counting = { getKeys: async (...args: Parameters<KeyStore['getKeys']>) => { lookups++; return r.store.getKeys(...args) }, isCurrent: (e: KeyEntry) => r.store.isCurrent(e) }
  const verifier = new TokenVerifier(config, new Map([['idp', counting as unknown as KeyStore]]), r.tokenCache, () => r.clock.now, failures)
  const forged = await mintToken(other, claims, { iat, expiresIn: 3600 })
  const first = await denial(verifier.verify(forged))
  const second = await denial(verifier.verify(forged))
  t.match(first, { reason: 'token_signature_invalid' })
  t.equal(second, first, 'the same answer')
  t.equal(lookups, 1, 'the key store was consulted once')

  const unknownKid = await mintToken(await makeKey('ES256', 'k9'), claims, { iat, expiresIn: 3600 })
  await denial(verifier.verify(unknownKid))
  await denial(verifier.verify(unknownKid))
  t.equal(lookups, 3, 'an unknown kid is looked up every time: a refetch may bring it')
})

t.test('verifier: a spray of distinct bad tokens, more than the failure cache holds, evicts no verified token', async (t) => {
  const k1 = await makeKey('ES256', 'k1')
  const r = await rig([k1])
  const failures = new FailureCache({ maxEntries: 1000, ttlMs: FAILURE_CACHE_DEFAULTS.ttlMs, now: () => r.clock.now })
  const verifier = new TokenVerifier(config, new Map([['idp', r.store]]), r.tokenCache, () => r.clock.now, failures)
  const good = await mintToken(k1, claims, { iat, expiresIn: 3600 })
  const kept = await verifier.verify(good)
  const [header, , signature] = good.split('.')
  // Well-formed, issuer and kid known, each payload different, none signed: every one reaches the
  // signature check and is cached as a settled failure, in a cache of its own.
  const body = (i: number): string => Buffer.from(JSON.stringify({ ...claims, exp: iat + 3600, jti: `spray-${i}` })).toString('base64url')
  let refused = 0
  for (let i = 0; i < 3000; i++) {
    const found = verifier.lookup(`${header ?? ''}.${body(i)}.${signature ?? ''}`)
    if (found instanceof TokenMiss) {
      const err = await denial(verifier.verifyMiss(found))
      if (err.reason === 'token_signature_invalid') refused++
    }
  }
  t.equal(refused, 3000, 'each bad token refused for its signature')
  t.equal(verifier.lookup(good), kept, 'the good token is still answered from the token cache')
  t.equal(r.tokenCache.size, 1, 'the token cache holds the good token only')
  t.equal(r.fetches(), 1, 'the spray made no key fetch')
})

t.test('verifier contract: lookup answers at once and never throws; verifyMiss rejects only with a GatewayError', async (t) => {
  const k1 = await makeKey('ES256', 'k1')
  const r = await rig([k1])
  const failures = new FailureCache({ ...FAILURE_CACHE_DEFAULTS, now: () => r.clock.now })
  const verifier = new TokenVerifier(config, new Map([['idp', r.store]]), r.tokenCache, () => r.clock.now, failures)
  const token = await mintToken(k1, claims, { iat, expiresIn: 3600 })

  const miss = verifier.lookup(token)
  t.ok(miss instanceof TokenMiss, 'an unseen token is a miss')
  if (!(miss instanceof TokenMiss)) return
  const verified = await verifier.verifyMiss(miss)
  t.equal(verifier.lookup(token), verified, 'then the very verification, synchronously')
  t.equal(verified.digest, miss.digest, 'named by the digest the lookup computed')

  const forged = await mintToken(await makeKey('ES256', 'k1'), claims, { iat, expiresIn: 3600 })
  const forgedMiss = verifier.lookup(forged)
  if (!(forgedMiss instanceof TokenMiss)) throw new Error('expected a miss')
  const failure = await denial(verifier.verifyMiss(forgedMiss))
  t.match(failure, { reason: 'token_signature_invalid' })
  t.equal(verifier.lookup(forged), failure, 'a settled failure is returned, not thrown')

  for (const odd of ['', '.', 'a.b.c', 'x'.repeat(10_000), '\u0000', '..']) {
    t.doesNotThrow(() => verifier.lookup(odd), `lookup of ${JSON.stringify(odd.slice(0, 8))} does not throw`)
  }
  const broken = { getKeys: async () => { throw new TypeError('a bug in a key store') }, isCurrent: () => true }
  const strict = new TokenVerifier(config, new Map([['idp', broken as unknown as KeyStore]]), null, () => r.clock.now)
  const fromBug = await strict.verifyMiss(new TokenMiss(token, 'digest')).then(() => null, (err: unknown) => err)
  t.ok(fromBug instanceof GatewayError, 'anything else thrown on the way becomes a GatewayError')
  t.match(fromBug, { status: 500, code: 'server_error', reason: 'internal' })
})
