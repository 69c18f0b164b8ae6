import { createPublicKey, type KeyObject } from 'node:crypto'
import t from 'tap'
import { SignJWT } from 'jose'
import type { CompiledConfig } from '../../src/config/types.js'
import { GatewayError } from '../../src/shared/errors.js'
import { KeyStore } from '../../src/keys/key-store.js'
import { Interner, identityClaims, listClaim, readClaim, stringClaim, type ClaimConfig } from '../../src/token/claims.js'
import { parseJwt } from '../../src/token/parse-jwt.js'
import { TokenCache } from '../../src/token/token-cache.js'
import { verifySignature } from '../../src/token/verify-signature.js'
import { TokenVerifier, cacheKey } from '../../src/token/verify-token.js'
import { compileTestConfig } from '../helpers/gateway.js'
import { makeKey, mintToken, type TestAlg, type TestKey } from '../helpers/jwks-server.js'

const ALGS: TestAlg[] = ['RS256', 'PS256', 'ES256', 'EdDSA']
const keys = new Map<TestAlg, TestKey>()
for (const alg of ALGS) keys.set(alg, await makeKey(alg, `kid-${alg}`))
function keyFor (alg: TestAlg): TestKey {
  const key = keys.get(alg)
  if (key === undefined) throw new Error(`no ${alg} key`)
  return key
}
const publicKey = (key: TestKey): KeyObject => createPublicKey({ key: key.publicJwk as import('node:crypto').JsonWebKey, format: 'jwk' })

/** What a promise or function was denied with: its reason id, or 'ok'. */
async function reasonOf (fn: () => unknown): Promise<string> {
  try {
    await fn()
    return 'ok'
  } catch (err) {
    if (err instanceof GatewayError) return err.reason
    throw err
  }
}

/* ------------------------------------------------------------------ parseJwt ------------------------------------------------------------------ */

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
/** `text` with the lowest of the six bits spelled by its character at `at` flipped. */
const flipLowBit = (text: string, at: number): string =>
  text.slice(0, at) + (BASE64URL_ALPHABET[BASE64URL_ALPHABET.indexOf(text.charAt(at)) ^ 1] ?? '') + text.slice(at + 1)

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const HEADER = b64({ alg: 'RS256', kid: 'k' })
const PAYLOAD = b64({ iss: 'https://idp', sub: 'alice' })

t.test('parseJwt splits a compact JWS and decodes header and payload', async (t) => {
  const parsed = parseJwt(`${HEADER}.${PAYLOAD}.c2ln`)
  t.same(parsed.header, { alg: 'RS256', kid: 'k' })
  t.same(parsed.payload, { iss: 'https://idp', sub: 'alice' })
  t.equal(parsed.signingInput, `${HEADER}.${PAYLOAD}`)
  t.same(parsed.signature, Buffer.from('sig'))
})

t.test('parseJwt refuses every other shape as a malformed token', async (t) => {
  const cases: Array<[name: string, token: string]> = [
    ['empty', ''],
    ['one segment', HEADER],
    ['two segments', `${HEADER}.${PAYLOAD}`],
    ['four segments', `${HEADER}.${PAYLOAD}.c2ln.c2ln`],
    ['JWE-like five segments', `${HEADER}.a.b.c.d`],
    ['empty header', `.${PAYLOAD}.c2ln`],
    ['empty payload', `${HEADER}..c2ln`],
    ['empty signature (alg none style)', `${HEADER}.${PAYLOAD}.`],
    ['padding in the signature', `${HEADER}.${PAYLOAD}.c2ln=`],
    ['padding in the header', `${b64({ alg: 'RS256' })}=.${PAYLOAD}.c2ln`],
    ['standard base64 characters', `${HEADER}.${PAYLOAD}.a+b/`],
    // "c2k" is "si"; "c2l" spells the same bytes with an unused bit set.
    ['a signature spelled non-canonically', `${HEADER}.${PAYLOAD}.c2l`],
    ['a signature of impossible length', `${HEADER}.${PAYLOAD}.c2lnc`],
    ['header not JSON', `${b64('not json')}.${PAYLOAD}.c2ln`],
    ['header a JSON array', `${b64([1])}.${PAYLOAD}.c2ln`],
    ['header JSON null', `${b64('null')}.${PAYLOAD}.c2ln`],
    ['payload a JSON string', `${HEADER}.${b64('"alice"')}.c2ln`],
    ['payload a number', `${HEADER}.${b64('42')}.c2ln`],
    ['spaces', `${HEADER} .${PAYLOAD}.c2ln`]
  ]
  for (const [name, token] of cases) {
    try {
      parseJwt(token)
      t.fail(`${name}: should throw`)
    } catch (err) {
      t.match(err, { status: 401, code: 'invalid_token', reason: 'token_malformed' }, name)
    }
  }
})

/* ------------------------------------------------------------------ verifySignature ------------------------------------------------------------------ */

function tamperPayload (token: string): string {
  const [h, , s] = token.split('.')
  return `${h ?? ''}.${b64({ sub: 'mallory', exp: 9_999_999_999 })}.${s ?? ''}`
}

function tamperSignature (token: string): string {
  const [h, p, s] = token.split('.')
  const sig = Buffer.from(s ?? '', 'base64url')
  sig[sig.length - 1] = (sig[sig.length - 1] ?? 0) ^ 0x01
  return `${h ?? ''}.${p ?? ''}.${sig.toString('base64url')}`
}

t.test('verifySignature accepts a good signature and refuses a tampered one, for each algorithm', async (t) => {
  for (const alg of ALGS) {
    const key = keyFor(alg)
    const token = await mintToken(key, { sub: 'alice' })
    const check = (jwt: string, with_: KeyObject = publicKey(key)): boolean => {
      const { signingInput, signature } = parseJwt(jwt)
      return verifySignature(alg, with_, signingInput, signature)
    }
    t.equal(check(token), true, `${alg}: good`)
    t.equal(check(tamperPayload(token)), false, `${alg}: payload changed`)
    t.equal(check(tamperSignature(token)), false, `${alg}: signature changed`)
    const other = await makeKey(alg)
    t.equal(check(token, publicKey(other)), false, `${alg}: another key of the same type`)
  }
})

t.test('verifySignature returns false, never throws, for a key of the wrong type or an unknown algorithm', async (t) => {
  for (const alg of ALGS) {
    const token = await mintToken(keyFor(alg), { sub: 'alice' })
    const { signingInput, signature } = parseJwt(token)
    for (const other of ALGS.filter((a) => a !== alg)) {
      let result: boolean | 'threw' = 'threw'
      try { result = verifySignature(alg, publicKey(keyFor(other)), signingInput, signature) } catch { /* reported below */ }
      t.equal(result, false, `${alg} token checked with a ${other} key`)
    }
    for (const unknown of ['none', 'HS256', 'ES999', '']) {
      t.equal(verifySignature(unknown, publicKey(keyFor(alg)), signingInput, signature), false, `${alg} key with alg "${unknown}"`)
    }
    t.equal(verifySignature(alg, publicKey(keyFor(alg)), signingInput, Buffer.alloc(0)), false, `${alg}: empty signature`)
  }
  const rsa = await mintToken(keyFor('RS256'), { sub: 'alice' })
  const { signingInput, signature } = parseJwt(rsa)
  t.equal(verifySignature('PS256', publicKey(keyFor('RS256')), signingInput, signature), false, 'an RS256 signature is not a PS256 one')
})

/* ------------------------------------------------------------------ claims ------------------------------------------------------------------ */

t.test('readClaim: a segment is a whole claim name, even with dots and slashes; lists of segments go deeper', async (t) => {
  const payload = {
    'https://example.com/roles': ['admin'],
    'a.b': 'dotted',
    a: { b: 'nested', list: ['x'] },
    realm_access: { roles: ['editor'] },
    nothing: null
  }
  const cases: Array<[path: string[], expected: unknown]> = [
    [['https://example.com/roles'], ['admin']],
    [['a.b'], 'dotted'],
    [['a', 'b'], 'nested'],
    [['realm_access', 'roles'], ['editor']],
    [['realm_access'], { roles: ['editor'] }],
    [['missing'], undefined],
    [['a', 'missing'], undefined],
    [['a', 'b', 'deeper'], undefined],
    [['a', 'list', '0'], undefined],
    [['nothing'], null],
    [['nothing', 'x'], undefined],
    [['https:'], undefined],
    [['constructor'], undefined],
    [['toString'], undefined],
    [['a', 'hasOwnProperty'], undefined],
    [[], payload]
  ]
  for (const [path, expected] of cases) t.same(readClaim(payload, path), expected, JSON.stringify(path))
})

t.test('list claims: a space- or comma-delimited string, or an array of strings; order kept, duplicates and junk dropped', async (t) => {
  const spaces = / +/
  const spacesOrCommas = /[ ,]+/
  const cases: Array<[value: unknown, delimiter: RegExp, expected: string[]]> = [
    ['read write', spaces, ['read', 'write']],
    ['  read   write  ', spaces, ['read', 'write']],
    ['read,write', spaces, ['read,write']],
    ['admin,user', spacesOrCommas, ['admin', 'user']],
    ['admin, user editor', spacesOrCommas, ['admin', 'user', 'editor']],
    ['b a b', spaces, ['b', 'a']],
    [['b', 'a', 'b'], spaces, ['b', 'a']],
    [['x', 1, null, '', { y: 1 }, 'z'], spaces, ['x', 'z']],
    ['', spaces, []],
    [undefined, spaces, []],
    [42, spaces, []],
    [{ read: true }, spaces, []]
  ]
  for (const [value, delimiter, expected] of cases) t.same(listClaim(value, delimiter), expected, JSON.stringify(value))
})

t.test('string claims: non-empty strings, nothing else; a number is never turned into text', async (t) => {
  const cases: Array<[value: unknown, expected: string | null]> = [
    ['alice', 'alice'], [12345, null], [1.5, null], ['', null], [Number.NaN, null], [true, null], [null, null], [undefined, null], [['a'], null]
  ]
  for (const [value, expected] of cases) t.equal(stringClaim(value), expected, String(value))
})

t.test('identityClaims reads subject, client id, scopes, roles and audiences per the claim config', async (t) => {
  const defaults: ClaimConfig = { scope: [['scope'], ['scp'], ['permissions']], roles: ['roles'], clientId: [['client_id'], ['azp']], subject: ['sub'] }
  const auth0: ClaimConfig = { ...defaults, roles: ['https://example.com/roles'] }
  const keycloak: ClaimConfig = { ...defaults, roles: ['realm_access', 'roles'], subject: ['preferred_username'] }
  const cases: Array<[name: string, config: ClaimConfig, payload: Record<string, unknown>, expected: Partial<ReturnType<typeof identityClaims>>]> = [
    ['scope as a string', defaults, { scope: 'read write' }, { scopes: ['read', 'write'] }],
    ['scope as an array', defaults, { scope: ['read', 'write'] }, { scopes: ['read', 'write'] }],
    ['scp when there is no scope', defaults, { scp: ['read'] }, { scopes: ['read'] }],
    ['permissions when there is neither', defaults, { permissions: ['read:todos'] }, { scopes: ['read:todos'] }],
    ['the first present alternative wins', defaults, { scope: 'a', scp: ['b'] }, { scopes: ['a'] }],
    ['a null alternative is skipped', defaults, { scope: null, scp: ['b'] }, { scopes: ['b'] }],
    ['no scope claim', defaults, {}, { scopes: [] }],
    ['roles as an array', defaults, { roles: ['admin', 'user'] }, { roles: ['admin', 'user'] }],
    ['roles as a comma-separated string', defaults, { roles: 'admin,user' }, { roles: ['admin', 'user'] }],
    ['roles as a space-separated string', defaults, { roles: 'admin user' }, { roles: ['admin', 'user'] }],
    ['roles from a namespaced claim with dots and slashes', auth0, { 'https://example.com/roles': ['editor'], roles: ['ignored'] }, { roles: ['editor'] }],
    ['roles from a nested claim', keycloak, { realm_access: { roles: ['editor'] } }, { roles: ['editor'] }],
    ['subject from another claim', keycloak, { sub: 'uuid', preferred_username: 'alice' }, { subject: 'alice' }],
    ['a numeric subject is not converted (the verifier refuses it before)', defaults, { sub: 1234567 }, { subject: null }],
    ['an object subject is none', defaults, { sub: { id: 1 } }, { subject: null }],
    ['client_id', defaults, { client_id: 'todo-web' }, { clientId: 'todo-web' }],
    ['azp when there is no client_id', defaults, { azp: 'todo-spa' }, { clientId: 'todo-spa' }],
    ['client_id before azp', defaults, { azp: 'todo-spa', client_id: 'todo-web' }, { clientId: 'todo-web' }],
    ['a null client_id falls back to azp', defaults, { client_id: null, azp: 'todo-spa' }, { clientId: 'todo-spa' }],
    ['no client id', defaults, {}, { clientId: null }],
    ['aud as a string', defaults, { aud: 'https://todo.api' }, { audiences: ['https://todo.api'] }],
    ['aud as an array', defaults, { aud: ['a', 'b'] }, { audiences: ['a', 'b'] }],
    ['no aud', defaults, {}, { audiences: null }],
    ['an empty aud array is a missing aud', defaults, { aud: [] }, { audiences: null }]
  ]
  for (const [name, config, payload, expected] of cases) t.match(identityClaims(payload, config), expected, name)
})

t.test('the interner hands out one frozen copy of each distinct list and client id, and stays bounded', async (t) => {
  const shared = new Interner(4)
  const first = shared.list(['read', 'write'])
  t.equal(shared.list(['read', 'write']), first, 'an equal list is the same object')
  t.ok(Object.isFrozen(first), 'frozen, so no holder can change it for the others')
  const mine = ['read']
  t.not(shared.list(mine), mine, 'the caller\'s array is copied, never frozen in place')
  t.not(shared.list(['read write']), shared.list(['read', 'write']), '["read write"] and ["read", "write"] stay apart')
  t.same(shared.list(['read write']), ['read write'])
  t.equal(shared.list([]), shared.list([]), 'one empty list')
  const id = shared.text(['todo', 'web'].join('-'))
  t.equal(shared.text(['todo', 'web'].join('-')), id)
  t.equal(shared.text(null), null)
  // A client id spelled like a list's key and that list stay apart: each lookup gets its own kind back.
  t.equal(shared.text('["x"]'), '["x"]')
  t.same(shared.list(['x']), ['x'])
  t.equal(shared.text('["x"]'), '["x"]')
  for (let i = 0; i < 20; i++) shared.list([`scope-${i}`])
  t.ok(shared.size <= 4, `bounded: ${shared.size} values held`)
  t.same(shared.list(['read', 'write']), ['read', 'write'], 'still right after starting afresh')
})

t.test('identityClaims with an interner: equal claims across tokens share one copy, values unchanged', async (t) => {
  const config: ClaimConfig = { scope: [['scope']], roles: ['roles'], clientId: [['client_id']], subject: ['sub'] }
  const shared = new Interner()
  const payload = (sub: string): Record<string, unknown> => ({ sub, client_id: `todo-${'web'}`, scope: 'read write read', roles: 'admin,user', aud: ['a', 'b'] })
  const [alice, bob] = [identityClaims(payload('alice'), config, shared), identityClaims(payload('bob'), config, shared)]
  t.same(alice, { subject: 'alice', clientId: 'todo-web', scopes: ['read', 'write'], roles: ['admin', 'user'], audiences: ['a', 'b'] })
  t.same(bob, { ...alice, subject: 'bob' })
  t.equal(bob.scopes, alice.scopes)
  t.equal(bob.roles, alice.roles)
  t.equal(bob.audiences, alice.audiences)
  t.same(identityClaims(payload('carol'), config), identityClaims(payload('carol'), config, shared), 'the same identity with or without one')
})

/* ------------------------------------------------------------------ TokenVerifier ------------------------------------------------------------------ */

const ISS = 'https://tenant.example.com/'
const STRICT_ISS = 'https://strict.example.com'
const JWKS_URI = 'https://tenant.example.com/.well-known/jwks.json'
const NOW_S = 1_700_000_000
const TOLERANCE_S = 30

const config: CompiledConfig = compileTestConfig({
  issuers: [
    { id: 'tenant', issuer: ISS, jwksUri: JWKS_URI, algorithms: ALGS, audiences: ['https://todo.api', 'https://other.api'], clockTolerance: `${TOLERANCE_S}s` },
    { id: 'strict', issuer: STRICT_ISS, jwksUri: 'https://strict.example.com/jwks', algorithms: ['ES256'], audiences: ['https://todo.api'], requireTyp: true, clockTolerance: '0s' }
  ],
  upstreams: { todo: { url: 'http://todo-api:3000' } },
  routes: [{ id: 'r', match: { path: '/' }, upstream: 'todo' }]
})

interface Setup {
  verifier: TokenVerifier
  /** URLs fetched so far. */
  fetched: string[]
  cache: TokenCache
  /** Sets the clock, milliseconds since the epoch. */
  setNow: (ms: number) => void
}

/** A verifier with real key stores whose fetch is a function serving the test keys, and a clock the test moves. */
function setup (options: { cache?: boolean, config?: CompiledConfig } = {}): Setup {
  const compiled = options.config ?? config
  let nowMs = NOW_S * 1000
  const now = (): number => nowMs
  const fetched: string[] = []
  const jwks = JSON.stringify({ keys: [...keys.values()].map((k) => k.publicJwk) })
  const fetch = async (url: string): Promise<Response> => {
    fetched.push(url)
    return new Response(jwks, { status: 200, headers: { 'content-type': 'application/json' } })
  }
  const stores = new Map([...compiled.issuersById.values()].map((issuer) => [issuer.id, new KeyStore(issuer, { fetch, now })]))
  const cache = new TokenCache({ maxEntries: 100, maxBytes: 1 << 20, maxTtlMs: 3_600_000, now })
  const verifier = new TokenVerifier(compiled, stores, options.cache === false ? null : cache, now)
  return { verifier, fetched, cache, setNow: (ms) => { nowMs = ms } }
}

/** The claims RFC 9068 §2.2 requires (iat is added by mintToken), for the strict issuer. */
const strictClaims = (claims: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ iss: STRICT_ISS, aud: 'https://todo.api', sub: 'alice', client_id: 'todo-web', jti: 'j1', ...claims })

const mint = (claims: Record<string, unknown>, alg: TestAlg = 'ES256', header: Record<string, unknown> = {}): Promise<string> =>
  mintToken(keyFor(alg), { iss: ISS, sub: 'alice', aud: 'https://todo.api', ...claims }, { iat: NOW_S, header })

t.test('a good token of each algorithm verifies and carries its identity', async (t) => {
  for (const alg of ALGS) {
    const { verifier, fetched } = setup()
    const token = await mint({ scope: 'read:todos write:todos', client_id: 'todo-web', roles: ['user'] }, alg)
    const verified = await verifier.verify(token)
    t.equal(verified.issuer.id, 'tenant', alg)
    t.equal(verified.subject, 'alice')
    t.equal(verified.clientId, 'todo-web')
    t.same(verified.scopes, ['read:todos', 'write:todos'])
    t.same(verified.roles, ['user'])
    t.same(verified.audiences, ['https://todo.api'])
    t.equal(verified.expiresAt, NOW_S + 300)
    t.equal(verified.key?.kid, `kid-${alg}`)
    t.same(fetched, [JWKS_URI], 'keys fetched once, from the configured URL')
  }
})

t.test('tokens verified by one verifier share their equal scope, role and audience lists', async (t) => {
  const { verifier } = setup()
  const claims = { scope: 'read:todos write:todos', client_id: 'todo-web', roles: ['user'] }
  const [alice, bob] = await Promise.all([mint(claims).then((token) => verifier.verify(token)), mint({ ...claims, sub: 'bob' }).then((token) => verifier.verify(token))])
  t.equal(bob.subject, 'bob')
  t.equal(bob.scopes, alice.scopes)
  t.equal(bob.roles, alice.roles)
  t.equal(bob.audiences, alice.audiences)
  t.same(Object.keys(bob), Object.keys(alice), 'built with one shape')
})

t.test('tampered and mis-signed tokens are refused', async (t) => {
  const { verifier } = setup()
  const good = await mint({})
  const otherKey = await makeKey('ES256', 'kid-ES256')
  const cases: Array<[name: string, token: string, reason: string]> = [
    ['payload changed', tamperPayload(good), 'token_issuer_unknown'],
    ['payload changed, issuer kept', (() => {
      const [h, , s] = good.split('.')
      return `${h ?? ''}.${b64({ iss: ISS, sub: 'mallory', exp: NOW_S + 300 })}.${s ?? ''}`
    })(), 'token_signature_invalid'],
    ['signature changed', tamperSignature(good), 'token_signature_invalid'],
    ['signed by another key with the same kid', await mintToken(otherKey, { iss: ISS, aud: 'https://todo.api' }, { iat: NOW_S }), 'token_signature_invalid'],
    ['an unknown kid', await mint({}, 'ES256', { kid: 'rotated-away' }), 'token_key_unknown'],
    ['alg none', `${b64({ alg: 'none' })}.${b64({ iss: ISS, exp: NOW_S + 300 })}.c2ln`, 'token_algorithm_not_allowed'],
    ['alg HS256', `${b64({ alg: 'HS256', kid: 'kid-ES256' })}.${b64({ iss: ISS, exp: NOW_S + 300 })}.c2ln`, 'token_algorithm_not_allowed'],
    ['alg not pinned for this issuer', await mintToken(keyFor('RS256'), { iss: STRICT_ISS }, { iat: NOW_S }), 'token_algorithm_not_allowed'],
    ['alg swapped in the header', (() => {
      const [, p, s] = good.split('.')
      return `${b64({ alg: 'RS256', kid: 'kid-ES256', typ: 'at+jwt' })}.${p ?? ''}.${s ?? ''}`
    })(), 'token_key_unknown'],
    ['kid not a string', await mint({}, 'ES256', { kid: 7 }), 'token_malformed'],
    ['not a JWT', 'not-a-jwt', 'token_malformed']
  ]
  for (const [name, token, reason] of cases) t.equal(await reasonOf(() => verifier.verify(token)), reason, name)
})

t.test('a token from an issuer that is not configured is refused without fetching anything', async (t) => {
  const { verifier, fetched } = setup()
  const cases: Array<[name: string, token: string]> = [
    ['unknown iss', await mintToken(keyFor('ES256'), { iss: 'https://evil.example.com/' }, { iat: NOW_S })],
    ['iss differs by a trailing slash', await mintToken(keyFor('ES256'), { iss: 'https://tenant.example.com' }, { iat: NOW_S })],
    ['no iss', await mintToken(keyFor('ES256'), {}, { iat: NOW_S })],
    ['iss not a string', await mintToken(keyFor('ES256'), { iss: ['https://tenant.example.com/'] }, { iat: NOW_S })]
  ]
  for (const [name, token] of cases) t.equal(await reasonOf(() => verifier.verify(token)), 'token_issuer_unknown', name)
  t.same(fetched, [], 'no fetch for an unconfigured issuer')
})

t.test('exp and nbf are checked with the clock tolerance, to the exact boundary', async (t) => {
  const exp = NOW_S + 300
  const nbf = NOW_S + 100
  const expiring = await mint({ exp })
  const early = await mint({ nbf })
  const cases: Array<[name: string, token: string, nowMs: number, reason: string]> = [
    ['before exp', expiring, (exp - 1) * 1000, 'ok'],
    ['at exp', expiring, exp * 1000, 'ok'],
    ['past exp, within tolerance', expiring, (exp + TOLERANCE_S - 1) * 1000, 'ok'],
    ['one millisecond short of exp + tolerance', expiring, (exp + TOLERANCE_S) * 1000 - 1, 'ok'],
    ['exactly exp + tolerance: now must be before exp (RFC 7519 §4.1.4)', expiring, (exp + TOLERANCE_S) * 1000, 'token_expired'],
    ['one millisecond past exp + tolerance', expiring, (exp + TOLERANCE_S) * 1000 + 1, 'token_expired'],
    ['long after exp', expiring, (exp + 86_400) * 1000, 'token_expired'],
    ['one millisecond short of nbf - tolerance', early, (nbf - TOLERANCE_S) * 1000 - 1, 'token_not_yet_valid'],
    ['exactly nbf - tolerance', early, (nbf - TOLERANCE_S) * 1000, 'ok'],
    ['at nbf', early, nbf * 1000, 'ok']
  ]
  for (const [name, token, nowMs, reason] of cases) {
    const { verifier, setNow } = setup({ cache: false })
    setNow(nowMs)
    t.equal(await reasonOf(() => verifier.verify(token)), reason, name)
  }
})

t.test('an issuer with zero tolerance rejects a token at its exp', async (t) => {
  const { verifier, setNow } = setup({ cache: false })
  const token = await mintToken(keyFor('ES256'), strictClaims({ exp: NOW_S + 60 }), { iat: NOW_S, header: { typ: 'at+jwt' } })
  setNow((NOW_S + 60) * 1000 - 1)
  t.equal(await reasonOf(() => verifier.verify(token)), 'ok')
  setNow((NOW_S + 60) * 1000)
  t.equal(await reasonOf(() => verifier.verify(token)), 'token_expired')
})

t.test('exp is required and time claims must be numbers', async (t) => {
  const { verifier } = setup()
  const cases: Array<[name: string, token: string, reason: string]> = [
    ['no exp', await mintToken(keyFor('ES256'), { iss: ISS }, { iat: NOW_S, noExp: true }), 'token_claim_invalid'],
    ['exp as a string', await mint({ exp: String(NOW_S + 300) }), 'token_claim_invalid'],
    ['exp null', await mint({ exp: null }), 'token_claim_invalid'],
    ['nbf as a string', await mint({ nbf: String(NOW_S) }), 'token_claim_invalid'],
    ['iat as a string', await mint({ iat: 'yesterday' }), 'token_claim_invalid']
  ]
  for (const [name, token, reason] of cases) t.equal(await reasonOf(() => verifier.verify(token)), reason, name)
})

t.test('typ must be at+jwt when the issuer requires it', async (t) => {
  const { verifier } = setup()
  const strict = (typ: unknown): Promise<string> =>
    mintToken(keyFor('ES256'), strictClaims(), { iat: NOW_S, header: { typ } })
  const cases: Array<[typ: unknown, reason: string]> = [
    ['at+jwt', 'ok'],
    ['application/at+jwt', 'ok'],
    ['AT+JWT', 'ok'],
    ['JWT', 'token_type_invalid'],
    ['jwt', 'token_type_invalid'],
    [undefined, 'token_type_invalid'],
    [['at+jwt'], 'token_type_invalid']
  ]
  for (const [typ, reason] of cases) t.equal(await reasonOf(async () => verifier.verify(await strict(typ))), reason, `strict issuer, typ ${JSON.stringify(typ)}`)
  t.equal(await reasonOf(async () => verifier.verify(await mint({}, 'ES256', { typ: 'JWT' }))), 'ok', 'lenient issuer, typ JWT')
  t.equal(await reasonOf(async () => verifier.verify(await mint({}, 'ES256', { typ: undefined }))), 'ok', 'lenient issuer, no typ')
})

t.test('aud must name one of the issuer\'s audiences; a token without aud is left to the route policy', async (t) => {
  const { verifier } = setup()
  const cases: Array<[name: string, aud: unknown, reason: string]> = [
    ['one accepted audience', 'https://todo.api', 'ok'],
    ['the other accepted audience', 'https://other.api', 'ok'],
    ['an array with an accepted audience', ['https://nope.api', 'https://other.api'], 'ok'],
    ['an unknown audience', 'https://nope.api', 'token_audience_invalid'],
    ['an array without an accepted audience', ['https://nope.api', 'https://x.api'], 'token_audience_invalid'],
    ['audiences are compared exactly', 'https://todo.api/', 'token_audience_invalid'],
    ['aud of the wrong type', 42, 'token_claim_invalid'],
    ['aud null', null, 'token_claim_invalid'],
    ['no aud', undefined, 'ok'],
    ['an empty aud array, like no aud', [], 'ok']
  ]
  for (const [name, aud, reason] of cases) {
    const token = await mintToken(keyFor('ES256'), aud === undefined ? { iss: ISS } : { iss: ISS, aud }, { iat: NOW_S })
    t.equal(await reasonOf(() => verifier.verify(token)), reason, name)
  }
  const verified = await verifier.verify(await mintToken(keyFor('ES256'), { iss: ISS, aud: [] }, { iat: NOW_S }))
  t.equal(verified.audiences, null, 'an empty aud array reaches the policy as a missing audience')
})

t.test('a crit header is refused, even one the signer understood', async (t) => {
  const { verifier, fetched } = setup()
  const key = keyFor('ES256')
  const token = await new SignJWT({ iss: ISS, aud: 'https://todo.api', exp: NOW_S + 300 })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, crit: ['x-ext'], 'x-ext': 1 })
    .sign(key.privateKey, { crit: { 'x-ext': true } })
  t.equal(await reasonOf(() => verifier.verify(token)), 'token_malformed')
  t.same(fetched, [], 'refused before any key is needed')
})

t.test('a verified token keeps its whole payload only where a route reads claims beyond the identity', async (t) => {
  const claims = { scope: 'read:todos', client_id: 'todo-web', tenant: 'acme' }
  const lean = await setup().verifier.verify(await mint(claims))
  t.same(lean.claims, {}, 'no route forwards claims or re-issues: the payload is not kept')
  t.equal(lean.subject, 'alice', 'the identity is')
  t.same(lean.scopes, ['read:todos'])
  t.equal(lean.clientId, 'todo-web')

  const routes = (forward: Record<string, unknown>): CompiledConfig => compileTestConfig({
    issuers: [{ id: 'tenant', issuer: ISS, jwksUri: JWKS_URI, algorithms: ALGS, audiences: ['https://todo.api'] }],
    upstreams: { todo: { url: 'http://todo-api:3000' } },
    ...(forward.authorization === 'reissue' ? { reissue: { issuer: 'https://scopegate.internal' } } : {}),
    routes: [{ id: 'plain', match: { path: '/a' }, upstream: 'todo' }, { id: 'rich', match: { path: '/b' }, upstream: 'todo', forward }]
  })
  const forwarding = routes({ claims: { 'x-tenant-id': 'tenant' } })
  t.equal(forwarding.keepClaims, true)
  const full = await setup({ config: forwarding }).verifier.verify(await mint(claims))
  t.equal(full.claims.tenant, 'acme', 'a route forwards a claim: the payload is kept')
  t.equal(full.claims.sub, 'alice')
  t.equal(routes({ authorization: 'reissue' }).keepClaims, true, 're-issued tokens read the original payload')
  t.equal(routes({ authorization: 'strip' }).keepClaims, false)
})

t.test('verified tokens are cached: a hit returns the same object without verifying again', async (t) => {
  const { verifier, cache, fetched } = setup()
  const token = await mint({ scope: 'read:todos' })
  const first = await verifier.verify(token)
  const second = await verifier.verify(token)
  t.equal(second, first, 'the same object')
  t.equal(cache.hits, 1)
  t.equal(cache.misses, 1)
  t.equal(fetched.length, 1)
  const other = await verifier.verify(await mint({ scope: 'other' }))
  t.not(other, first, 'another token is another entry')
  t.equal(cache.get(cacheKey(token)), first, 'the entry is keyed by the token\'s SHA-256')
  t.equal(cacheKey(token).length, 44)
  t.equal(cache.get(token), undefined, 'not by the token itself, which the cache never holds')
})

t.test('a token differing from a cached one in any character is verified on its own', async (t) => {
  const { verifier, cache } = setup()
  const token = await mint({ scope: 'read:todos' })
  await verifier.verify(token)
  // An ES256 signature is 86 characters: the last one carries 2 bits and 4 unused ones, which must be zero.
  t.equal(await reasonOf(() => verifier.verify(flipLowBit(token, token.length - 1))), 'token_malformed', 'last character changed in its unused bits only')
  t.equal(await reasonOf(() => verifier.verify(flipLowBit(token, token.length - 10))), 'token_signature_invalid', 'a signature character changed')
  t.equal(await reasonOf(() => verifier.verify(token.slice(1))), 'token_malformed', 'first character dropped')
  t.equal(cache.hits, 0, 'none was taken for the cached token')
})

t.test('a cached token is re-checked for exp on every read', async (t) => {
  const { verifier, cache, setNow } = setup()
  const exp = NOW_S + 300
  const token = await mint({ exp })
  const first = await verifier.verify(token)

  setNow((exp + TOLERANCE_S) * 1000 - 1)
  t.equal(await verifier.verify(token), first, 'still served from the cache just before exp + tolerance')
  t.equal(cache.hits, 1)

  setNow((exp + TOLERANCE_S) * 1000)
  t.equal(cache.get(cacheKey(token)), undefined, 'at exp + tolerance the cache no longer has it')
  t.equal(await reasonOf(() => verifier.verify(token)), 'token_expired', 'and the verifier refuses it')
  t.equal(cache.size, 0, 'a refused token is not cached')
})

t.test('a refused token is never cached', async (t) => {
  const { verifier, cache } = setup()
  const token = await mint({ aud: 'https://nope.api' })
  t.equal(await reasonOf(() => verifier.verify(token)), 'token_audience_invalid')
  t.equal(await reasonOf(() => verifier.verify(token)), 'token_audience_invalid')
  t.equal(cache.size, 0)
  t.equal(cache.hits, 0)
})
