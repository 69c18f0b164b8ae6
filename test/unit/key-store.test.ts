/**
 * The per-issuer key store, with an injected clock and an injected fetch: start-up, refresh-ahead and
 * revalidation, the cooldown counted from the last attempt, one shared in-flight fetch, stale-if-error up
 * to maxStale, unusable and duplicate keys, discovery caching, the readiness probe, and the log events.
 * Nothing sleeps except where a fetch is deliberately held open.
 */
import t from 'tap'
import { generateKeyPairSync, type JsonWebKey } from 'node:crypto'
import type { CompiledIssuer, CompiledJwksOptions } from '../../src/config/types.js'
import { GatewayError } from '../../src/shared/errors.js'
import { compiledIssuer } from '../helpers/compiled-issuer.js'
import { denial } from '../helpers/denial.js'
import type { FetchLike } from '../../src/keys/fetch-json.js'
import { KeyStore, type KeyStoreEvents } from '../../src/keys/key-store.js'

const ISS = 'https://idp.test'
const JWKS_URL = 'https://idp.test/jwks'
const DISCOVERY_URL = 'https://idp.test/.well-known/openid-configuration'
const SEC = 1000
const MIN = 60 * SEC
const HOUR = 60 * MIN

const JWKS: CompiledJwksOptions = { refreshIntervalMs: 10 * MIN, cooldownMs: 30 * SEC, timeoutMs: 200, maxStaleMs: 24 * HOUR, maxBytes: 1048576 }

function issuer (jwks: Partial<CompiledJwksOptions> = {}, discovery = false): CompiledIssuer {
  return compiledIssuer({
    issuer: ISS,
    keys: discovery ? { kind: 'discovery', url: DISCOVERY_URL } : { kind: 'jwksUri', url: JWKS_URL },
    algorithms: new Set(['RS256', 'ES256']),
    jwks: { ...JWKS, ...jwks }
  })
}

// RSA key generation is slow; a small pool, handed out in turn, keeps consecutive keys distinct.
const rsaPool = Array.from({ length: 4 }, () => generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }))
const ecPool = Array.from({ length: 3 }, () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }))
let turn = 0

function rsaJwk (kid: string, extra: Record<string, unknown> = {}, bits = 2048): JsonWebKey {
  const material = bits === 2048 ? rsaPool[turn++ % rsaPool.length] : generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({ format: 'jwk' })
  return { ...material, kid, alg: 'RS256', use: 'sig', ...extra }
}

function ecJwk (kid: string, extra: Record<string, unknown> = {}): JsonWebKey {
  return { ...ecPool[turn++ % ecPool.length], kid, alg: 'ES256', use: 'sig', ...extra }
}

type Mode = 'ok' | 'down' | 'hang' | { body: string, type?: string }

/** A fake IdP behind an injected fetch: counts requests per URL, serves `jwks`, and can be held open with `hold()`. */
function fakeIdp (keys: JsonWebKey[]) {
  const state = {
    keys,
    mode: 'ok' as Mode,
    discoveryIssuer: ISS,
    calls: [] as string[],
    gate: null as Promise<void> | null,
    open: (): void => {}
  }
  const fetch: FetchLike = async (url, init) => {
    state.calls.push(url)
    if (state.gate !== null) await state.gate
    const mode = state.mode
    if (mode === 'hang') {
      return new Promise<Response>((_resolve, reject) => {
        init.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')))
      })
    }
    if (mode === 'down') return new Response('unavailable', { status: 503, headers: { 'content-type': 'text/plain' } })
    if (typeof mode === 'object') return new Response(mode.body, { status: 200, headers: { 'content-type': mode.type ?? 'application/json' } })
    const doc = url === DISCOVERY_URL ? { issuer: state.discoveryIssuer, jwks_uri: JWKS_URL } : { keys: state.keys }
    return new Response(JSON.stringify(doc), { status: 200, headers: { 'content-type': 'application/json' } })
  }
  return {
    state,
    fetch,
    jwksFetches: () => state.calls.filter((u) => u === JWKS_URL).length,
    discoveryFetches: () => state.calls.filter((u) => u === DISCOVERY_URL).length,
    /** Hold every fetch until `release()`. */
    hold: () => { state.gate = new Promise((resolve) => { state.open = resolve }) },
    release: () => { state.open(); state.gate = null }
  }
}

interface Logged { level: 'warn' | 'info', message: string, fields: Record<string, unknown> }

function setup (keys: JsonWebKey[], jwks: Partial<CompiledJwksOptions> = {}, discovery = false) {
  const idp = fakeIdp(keys)
  const clock = { now: 1_700_000_000_000 }
  const logs: Logged[] = []
  const fetched: string[] = []
  const events: KeyStoreEvents = {
    warn: (message, fields) => logs.push({ level: 'warn', message, fields }),
    info: (message, fields) => logs.push({ level: 'info', message, fields }),
    fetched: (_id, result, what) => fetched.push(`${what}:${result}`)
  }
  const store = new KeyStore(issuer(jwks, discovery), { fetch: idp.fetch, now: () => clock.now, events })
  return { idp, clock, logs, fetched, store }
}

/** Let a background fetch (already answered by the fake) finish. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

t.test('start-up: one fetch, then keys are served from memory', async (t) => {
  const k1 = rsaJwk('k1')
  const { idp, store, fetched, logs } = setup([k1])
  t.equal(store.status().state, 'starting')
  t.equal(store.probe().state, 'starting', 'the probe reports starting while the first fetch is under way')
  // The probe starts the first fetch itself (the fetch goes out in the caller's turn); start-up shares it.
  t.equal(idp.jwksFetches(), 1)
  await store.refresh()
  t.equal(idp.jwksFetches(), 1, 'one fetch for the probe and start-up together')
  t.same(fetched, ['jwks:ok'])
  t.match(store.status(), { issuer: 'idp', state: 'ready', keys: 1, ageSeconds: 0, failingForSeconds: null, lastError: null })
  const [entry] = await store.getKeys('k1', 'RS256')
  t.equal(entry?.kid, 'k1')
  for (let i = 0; i < 50; i++) await store.getKeys('k1', 'RS256')
  t.equal(idp.jwksFetches(), 1, 'known kids never fetch')
  t.match(logs, [{ level: 'info', message: 'issuer keys ready', fields: { issuer: 'idp', state: 'ready', previous: 'starting' } }])
})

t.test('status is "starting" while the first fetch is under way, and every caller shares that fetch', async (t) => {
  const { idp, store } = setup([rsaJwk('k1')])
  idp.hold()
  const first = store.refresh()
  t.equal(store.status().state, 'starting')
  const callers = Array.from({ length: 25 }, () => store.getKeys('k1', 'RS256'))
  await settle()
  t.equal(idp.state.calls.length, 1, 'one request on the wire for 26 callers')
  idp.release()
  await first
  const results = await Promise.all(callers)
  t.ok(results.every((r) => r[0]?.kid === 'k1'))
  t.equal(idp.jwksFetches(), 1)
})

t.test('unknown kid: at most one refetch per cooldown, counted from the last attempt', async (t) => {
  const { idp, store, clock } = setup([rsaJwk('k1')])
  await store.refresh()

  // Within the cooldown of the start-up fetch: refused without a fetch.
  let err = await denial(store.getKeys('nope', 'RS256'))
  t.match(err, { status: 401, code: 'invalid_token', reason: 'token_key_unknown' })
  t.equal(idp.jwksFetches(), 1)

  // The cooldown has passed: a burst of random kids costs exactly one shared fetch.
  clock.now += 30 * SEC
  const burst = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => store.getKeys(`random-${i}`, 'RS256')))
  t.ok(burst.every((r) => r.status === 'rejected' && (r.reason as GatewayError).reason === 'token_key_unknown'))
  t.equal(idp.jwksFetches(), 2, 'one refetch for 200 unknown kids')

  // The same and new unknown kids within the new cooldown: no fetch.
  clock.now += 29 * SEC
  for (let i = 0; i < 200; i++) await denial(store.getKeys(`random-${i % 7}-${i}`, 'RS256'))
  t.equal(idp.jwksFetches(), 2)

  // A failed attempt starts the cooldown just the same.
  clock.now += 1 * SEC
  idp.state.mode = 'down'
  err = await denial(store.getKeys('other', 'RS256'))
  t.equal(err.reason, 'token_key_unknown', 'known keys are still usable, so an unknown kid is still a 401')
  t.equal(idp.jwksFetches(), 3)
  clock.now += 29_999
  for (let i = 0; i < 100; i++) await denial(store.getKeys(`again-${i}`, 'RS256'))
  t.equal(idp.jwksFetches(), 3, 'a failing issuer is not hit once per request')
  clock.now += 1
  await denial(store.getKeys('again-0', 'RS256'))
  t.equal(idp.jwksFetches(), 4, 'a remembered miss is retried once the cooldown allows a fetch')
  t.equal((await store.getKeys('k1', 'RS256'))[0]?.kid, 'k1')
})

t.test('a new kid is accepted after exactly one refetch', async (t) => {
  const k1 = rsaJwk('k1')
  const { idp, store, clock } = setup([k1])
  await store.refresh()
  idp.state.keys = [rsaJwk('k2'), k1]
  clock.now += 30 * SEC
  const [entry] = await store.getKeys('k2', 'RS256')
  t.equal(entry?.kid, 'k2')
  t.equal(idp.jwksFetches(), 2)
  t.equal((await store.getKeys('k1', 'RS256'))[0]?.kid, 'k1', 'the old key stays while it is published')
  t.equal(idp.jwksFetches(), 2)
})

t.test('refresh-ahead: in the last tenth of refreshInterval a use refreshes in the background, nobody waits', async (t) => {
  const k1 = rsaJwk('k1')
  const { idp, store, clock } = setup([k1])
  await store.refresh()
  clock.now += 9 * MIN - 1
  await store.getKeys('k1', 'RS256')
  t.equal(idp.jwksFetches(), 1, 'not yet due')

  clock.now += 1
  idp.hold()
  const [entry] = await store.getKeys('k1', 'RS256')
  t.equal(entry?.kid, 'k1', 'answered from the held keys while the refresh is on the wire')
  t.equal(idp.jwksFetches(), 2, 'the refresh is on the wire (held open by the test)')
  t.equal(store.status().ageSeconds, 9 * 60, 'and has not answered yet')
  await store.getKeys('k1', 'RS256')
  t.equal(idp.jwksFetches(), 2, 'a second use shares it')
  idp.release()
  await settle()
  await settle()
  t.equal(idp.jwksFetches(), 2)
  t.equal(store.status().ageSeconds, 0)
  t.equal(store.isCurrent(entry!), true, 'an unchanged key keeps its entry, so cached verifications stay valid')
})

t.test('keys older than refreshInterval are revalidated before use: a removed kid is rejected at once', async (t) => {
  const k1 = rsaJwk('k1')
  const k2 = rsaJwk('k2')
  const { idp, store, clock } = setup([k1, k2])
  await store.refresh()
  const [old] = await store.getKeys('k1', 'RS256')
  idp.state.keys = [k2]
  // Idle until the interval is over: no use triggered refresh-ahead.
  clock.now += 10 * MIN
  t.equal(store.isCurrent(old!), false, 'a cached verification is not reused before revalidation')
  const err = await denial(store.getKeys('k1', 'RS256'))
  t.equal(err.reason, 'token_key_unknown')
  t.equal(idp.jwksFetches(), 2, 'exactly one refetch')
  t.equal(store.isCurrent(old!), false, 'the removed key is no longer current')
  t.equal((await store.getKeys('k2', 'RS256'))[0]?.kid, 'k2')
})

t.test('stale-if-error: the last good keys serve for maxStale from the first failure, then 503', async (t) => {
  const { idp, store, clock, logs } = setup([rsaJwk('k1')])
  await store.refresh()
  const start = clock.now
  const [entry] = await store.getKeys('k1', 'RS256')
  idp.state.mode = 'down'

  // Past the interval: revalidation fails, the held keys are used, the state turns stale.
  clock.now = start + 11 * MIN
  t.equal((await store.getKeys('k1', 'RS256'))[0]?.kid, 'k1')
  t.equal(idp.jwksFetches(), 2)
  const failedAt = clock.now
  t.match(store.status(), { state: 'stale', keys: 1, failingForSeconds: 0, lastError: /status: answered HTTP 503/ })
  t.equal(store.isCurrent(entry!), true, 'cached verifications stay valid while stale')

  // Retries happen in the background, once per cooldown, while the issuer is in use.
  for (let i = 0; i < 100; i++) await store.getKeys('k1', 'RS256')
  t.equal(idp.jwksFetches(), 2)
  clock.now = failedAt + 12 * HOUR
  await store.getKeys('k1', 'RS256')
  await settle()
  t.equal(idp.jwksFetches(), 3)

  clock.now = failedAt + 24 * HOUR - 10 * SEC
  t.equal((await store.getKeys('k1', 'RS256'))[0]?.kid, 'k1', 'still within maxStale')
  await settle()
  t.equal(idp.jwksFetches(), 4)

  clock.now = failedAt + 24 * HOUR + 1
  t.equal(store.isCurrent(entry!), false, 'past maxStale no cached verification is reused')
  let err = await denial(store.getKeys('k1', 'RS256'))
  t.match(err, { status: 503, code: 'temporarily_unavailable', reason: 'keys_unavailable', retryAfter: 20 },
    'Retry-After: when the cooldown of the last attempt (10 s ago) allows the next')
  t.equal(idp.jwksFetches(), 4, 'no fetch within the cooldown')
  t.equal(store.status().state, 'unavailable')
  clock.now += 20 * SEC
  err = await denial(store.getKeys('k1', 'RS256'))
  t.match(err, { status: 503, retryAfter: 30 })
  t.equal(idp.jwksFetches(), 5, 'one blocking retry once the cooldown allows it')

  // The issuer comes back.
  idp.state.mode = 'ok'
  clock.now += 30 * SEC
  t.equal((await store.getKeys('k1', 'RS256'))[0]?.kid, 'k1')
  t.equal(idp.jwksFetches(), 6)
  t.match(store.status(), { state: 'ready', failingForSeconds: null, lastError: null })

  t.same(logs.filter((l) => l.message.startsWith('issuer keys')).map((l) => [l.level, l.fields.state, l.fields.previous]), [
    ['info', 'ready', 'starting'],
    ['warn', 'stale', 'ready'],
    ['warn', 'unavailable', 'stale'],
    ['info', 'ready', 'unavailable']
  ], 'each change of state is logged once')
  t.equal(logs.filter((l) => l.message === 'JWKS fetch failed').length, 4, 'one line per failed fetch')
  t.match(logs.find((l) => l.message === 'JWKS fetch failed')?.fields, { issuer: 'idp', url: JWKS_URL, error: /HTTP 503/, usingStaleKeys: true })
})

t.test('an idle spell does not eat the outage budget: maxStale counts from the first failure', async (t) => {
  const { idp, store, clock } = setup([rsaJwk('k1')])
  await store.refresh()
  clock.now += 3 * 24 * HOUR
  t.equal(store.status().state, 'ready', 'idle, but nothing has failed')
  idp.state.mode = 'down'
  t.equal((await store.getKeys('k1', 'RS256'))[0]?.kid, 'k1', 'the revalidation fails; the last good keys serve')
  t.equal(idp.jwksFetches(), 2)
  t.equal(store.status().state, 'stale')
})

t.test('no keys ever: 503 with Retry-After, and the readiness probe drives the retry', async (t) => {
  const { idp, store, clock, logs } = setup([rsaJwk('k1')])
  idp.state.mode = 'down'
  await store.refresh()
  t.match(store.status(), { state: 'unavailable', keys: 0, ageSeconds: null, lastError: /HTTP 503/ })
  for (let i = 0; i < 50; i++) t.match(await denial(store.getKeys('k1', 'RS256')), { status: 503, retryAfter: 30 })
  t.equal(idp.jwksFetches(), 1, 'callers within the cooldown do not fetch')
  t.equal(store.probe().state, 'unavailable')
  t.equal(idp.jwksFetches(), 1, 'nor does the probe')

  idp.state.mode = 'ok'
  clock.now += 30 * SEC
  t.equal(store.probe().state, 'unavailable', 'the probe answers at once…')
  await settle()
  t.equal(idp.jwksFetches(), 2, '…and has started one retry')
  t.equal(store.probe().state, 'ready')
  t.equal(idp.jwksFetches(), 2)
  t.match(logs.map((l) => l.message), ['JWKS fetch failed', 'issuer keys unavailable: tokens of this issuer get 503', 'issuer keys ready'])
})

t.test('unusable keys are skipped with one bounded log line; only usable keys are kept', async (t) => {
  const good = rsaJwk('good')
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const keys: JsonWebKey[] = [
    good,
    rsaJwk('enc', { use: 'enc' }),
    { ...privateKey.export({ format: 'jwk' }), kid: 'private', alg: 'RS256' },
    { kty: 'oct', k: 'c2VjcmV0', kid: 'oct', alg: 'HS256' },
    rsaJwk('weak', {}, 1024),
    rsaJwk('rsa-as-es', { alg: 'ES256' }),
    ecJwk('ec-as-rs', { alg: 'RS256' }),
    ecJwk('ec-p256-as-es384', { alg: 'ES384' }),
    rsaJwk('verify-only', { key_ops: ['encrypt'] }),
    { kty: 'RSA', kid: 'broken', n: 'AQAB', e: 'AQAB' },
    ...Array.from({ length: 40 }, (_, i) => ({ kty: 'oct', kid: `junk-${i}`, k: 'AA' })),
    'not an object' as unknown as JsonWebKey
  ]
  const { store, logs } = setup(keys)
  await store.refresh()
  t.equal(store.status().keys, 1)
  t.equal((await store.getKeys('good', 'RS256'))[0]?.kid, 'good')
  const skipped = logs.find((l) => l.message === 'JWKS keys skipped')
  t.ok(skipped, 'one log line')
  t.equal(skipped?.fields.skippedCount, keys.length - 1)
  t.equal((skipped?.fields.skipped as string[]).length, 10, 'the line names at most 10 keys')
  t.match(skipped?.fields.skipped, [/"enc": use is enc/, /"private": has private key members/, /"oct": kty oct/, /"weak": RSA key shorter than 2048/,
    /"rsa-as-es": alg ES256 does not fit kty RSA/, /"ec-as-rs": alg RS256 does not fit kty EC/, /"ec-p256-as-es384": alg ES384/, /key_ops lacks verify/, /"broken": /])
  for (const kid of ['enc', 'private', 'oct', 'weak', 'rsa-as-es', 'ec-as-rs', 'ec-p256-as-es384']) {
    t.equal((await denial(store.getKeys(kid, 'RS256'))).reason, 'token_key_unknown', `${kid} is not usable`)
  }
})

t.test('a JWKS with no usable key counts as a failure: the last good keys stay', async (t) => {
  const { idp, store, clock } = setup([rsaJwk('k1')])
  await store.refresh()
  idp.state.keys = [rsaJwk('enc', { use: 'enc' })]
  clock.now += 30 * SEC
  await store.refresh()
  t.match(store.status(), { state: 'stale', keys: 1, lastError: /no usable keys \(1 listed\)/ })
  t.equal((await store.getKeys('k1', 'RS256'))[0]?.kid, 'k1')
})

t.test('two keys with the same kid: both are candidates, nothing breaks', async (t) => {
  const a = rsaJwk('same')
  const b = rsaJwk('same')
  const c = ecJwk('same')
  const { store } = setup([a, b, c])
  await store.refresh()
  t.equal(store.status().keys, 3)
  const rsa = await store.getKeys('same', 'RS256')
  t.equal(rsa.length, 2, 'both RSA keys, in JWKS order')
  t.equal((await store.getKeys('same', 'ES256')).length, 1, 'the alg narrows the candidates')
  t.equal((await denial(store.getKeys('same', 'PS256'))).reason, 'token_key_unknown')
})

t.test('a token without kid: accepted only when exactly one key fits its algorithm', async (t) => {
  const { idp, store, clock } = setup([rsaJwk('r1'), ecJwk('e1')])
  await store.refresh()
  t.equal((await store.getKeys('', 'ES256'))[0]?.kid, 'e1')
  idp.state.keys = [rsaJwk('r1'), ecJwk('e1'), ecJwk('e2')]
  clock.now += 30 * SEC
  await store.refresh()
  t.equal((await denial(store.getKeys('', 'ES256'))).reason, 'token_key_unknown', 'ambiguous')
})

t.test('bodies that are not a JWKS: a clear error, no exception, bounded', async (t) => {
  const cases: Array<[string, Mode, RegExp]> = [
    ['HTML', { body: '<!DOCTYPE html><html><body>Sign in to the Wi-Fi</body></html>', type: 'text/html' }, /not_json: body is not JSON \(text\/html, \d+ bytes, starts "<!DOCTYPE html><html><body>Sign in/],
    ['garbage', { body: '\u0000\u0001garbage{{{', type: 'application/octet-stream' }, /not_json: body is not JSON \(application\/octet-stream/],
    ['JSON null', { body: 'null' }, /not_json: JWKS is not an object with a "keys" array/],
    ['an array', { body: '[{"kty":"RSA"}]' }, /not_json: JWKS is not an object with a "keys" array/],
    ['keys not an array', { body: '{"keys":"none"}' }, /not_json: JWKS is not an object with a "keys" array/],
    ['oversized', { body: JSON.stringify({ keys: [], pad: 'x'.repeat(5000) }) }, /too_large: .*maxBytes 4096/]
  ]
  for (const [name, mode, error] of cases) {
    const { idp, store, logs } = setup([], { maxBytes: 4096 })
    idp.state.mode = mode
    await store.refresh()
    t.match(store.status(), { state: 'unavailable', keys: 0, lastError: error }, name)
    t.match(logs[0], { level: 'warn', message: 'JWKS fetch failed', fields: { issuer: 'idp', url: JWKS_URL, error } }, `${name}: logged`)
    t.match(await denial(store.getKeys('k', 'RS256')), { status: 503 }, `${name}: 503`)
  }
})

t.test('a slow JWKS times out; the held keys keep serving meanwhile', async (t) => {
  const { idp, store, clock } = setup([rsaJwk('k1')], { timeoutMs: 50 })
  await store.refresh()
  idp.state.mode = 'hang'
  clock.now += 9 * MIN
  const began = Date.now()
  t.equal((await store.getKeys('k1', 'RS256'))[0]?.kid, 'k1')
  t.ok(Date.now() - began < 40, 'answered without waiting for the hanging fetch')
  await new Promise((resolve) => setTimeout(resolve, 120))
  t.match(store.status(), { state: 'stale', lastError: /timeout: no complete answer within 50 ms/ })
  t.equal(idp.jwksFetches(), 2)
})

t.test('discovery: cached, refreshed with the keys, validated, and its last answer kept while it fails', async (t) => {
  const { idp, store, clock, fetched, logs } = setup([rsaJwk('k1')], {}, true)
  await store.refresh()
  t.same([idp.discoveryFetches(), idp.jwksFetches()], [1, 1])
  clock.now += 30 * SEC
  await denial(store.getKeys('unknown', 'RS256'))
  t.same([idp.discoveryFetches(), idp.jwksFetches()], [1, 2], 'an unknown-kid refetch reuses the cached discovery')
  clock.now += 9 * MIN
  await store.getKeys('k1', 'RS256')
  await settle()
  await settle()
  t.same([idp.discoveryFetches(), idp.jwksFetches()], [2, 3], 'the periodic refresh rereads discovery too')

  // Discovery breaks, the JWKS does not: the last jwks_uri is used.
  idp.state.discoveryIssuer = 'https://evil.test'
  clock.now += 10 * MIN
  await store.getKeys('k1', 'RS256')
  t.same([idp.discoveryFetches(), idp.jwksFetches()], [3, 4])
  t.equal(store.status().state, 'ready')
  t.match(logs.find((l) => l.message === 'discovery failed; using the last jwks_uri')?.fields, { issuer: 'idp', error: /discovery names issuer "https:\/\/evil.test"/ })
  t.same(fetched, ['discovery:ok', 'jwks:ok', 'jwks:ok', 'discovery:ok', 'jwks:ok', 'discovery:error', 'jwks:ok'])
})

t.test('discovery that never worked: unavailable; the attempt counts as a failed JWKS fetch, though no JWKS request was made', async (t) => {
  const { idp, store, fetched } = setup([rsaJwk('k1')], {}, true)
  idp.state.discoveryIssuer = 'https://other.test'
  await store.refresh()
  t.match(store.status(), { state: 'unavailable', lastError: /discovery https:\/\/idp.test\/.well-known\/openid-configuration: discovery names issuer/ })
  t.same([idp.discoveryFetches(), idp.jwksFetches()], [1, 0])
  t.same(fetched, ['discovery:error', 'jwks:error'])
})

t.test('adopt: a store built on reload takes over the keys without a fetch', async (t) => {
  const { idp, store, clock } = setup([rsaJwk('k1')])
  await store.refresh()
  const [entry] = await store.getKeys('k1', 'RS256')
  const next = new KeyStore(issuer({ cooldownMs: 5 * SEC }), { fetch: idp.fetch, now: () => clock.now }).adopt(store)
  t.equal(next.status().state, 'ready')
  t.equal(next.isCurrent(entry!), true)
  t.equal((await next.getKeys('k1', 'RS256'))[0], entry)
  t.equal(idp.jwksFetches(), 1)
  clock.now += 5 * SEC
  await denial(next.getKeys('nope', 'RS256'))
  t.equal(idp.jwksFetches(), 2, 'the new cooldown applies')
})
