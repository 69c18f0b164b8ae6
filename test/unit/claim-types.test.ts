import t from 'tap'
import type { CompiledConfig, CompiledIssuer } from '../../src/config/types.js'
import { GatewayError } from '../../src/shared/errors.js'
import { KeyStore } from '../../src/keys/key-store.js'
import { checkClaimTypes } from '../../src/token/check-claim-types.js'
import { TokenVerifier } from '../../src/token/verify-token.js'
import { compileTestConfig } from '../helpers/gateway.js'
import { makeKey, mintToken } from '../helpers/jwks-server.js'

const LAX = 'https://lax.example'
const PROFILE = 'https://profile.example'
const NOW_S = 1_700_000_000

const config: CompiledConfig = compileTestConfig({
  issuers: [
    {
      id: 'lax',
      issuer: LAX,
      jwksUri: 'https://lax.example/jwks',
      algorithms: ['ES256'],
      audiences: ['gw'],
      clockTolerance: '60s',
      claims: { roles: ['realm_access', 'roles'], subject: 'preferred_username', scope: ['scope', 'scp'] }
    },
    { id: 'profile', issuer: PROFILE, jwksUri: 'https://profile.example/jwks', algorithms: ['ES256'], audiences: ['gw'], requireTyp: true, clockTolerance: '60s' }
  ],
  upstreams: { api: { url: 'http://api:3000' } },
  routes: [
    { id: 'plain', match: { path: '/a' }, upstream: 'api' },
    { id: 'tenant', match: { path: '/b' }, upstream: 'api', forward: { claims: { 'x-tenant': 'tenant', 'x-org-id': ['org', 'id'] } } }
  ]
})

function issuer (id: string): CompiledIssuer {
  const found = config.issuersById.get(id)
  if (found === undefined) throw new Error(`no issuer ${id}`)
  return found
}

/** The reason a payload is refused for, with the log detail, or 'ok'. */
function verdict (payload: Record<string, unknown>, issuerId = 'lax'): string {
  try {
    checkClaimTypes(payload, issuer(issuerId), config)
    return 'ok'
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err
    t.equal(err.status, 401)
    t.equal(err.code, 'invalid_token')
    return `${err.reason}: ${err.detail ?? ''}`
  }
}

const BASE = { iss: LAX, aud: 'gw', sub: 'uuid-1', exp: NOW_S + 300, iat: NOW_S }
const FULL = { ...BASE, iss: PROFILE, client_id: 'web', jti: 'j1' }

t.test('each claim scopegate reads has its RFC type; any other type is refused, never converted', async (t) => {
  const cases: Array<[name: string, claims: Record<string, unknown>, expected: string]> = [
    ['a well-typed token', { scope: 'read write', client_id: 'web', azp: 'web', jti: 'j', nbf: NOW_S }, 'ok'],
    // sub, client_id, azp, jti, iss: strings (RFC 7519 §4.1, RFC 8693 §4.3, OIDC Core §2)
    ['numeric sub', { sub: 12345 }, 'token_claim_invalid: sub is a number, not a string'],
    ['sub an array', { sub: ['alice'] }, 'token_claim_invalid: sub is an array, not a string'],
    ['sub an object', { sub: { id: 1 } }, 'token_claim_invalid: sub is an object, not a string'],
    ['sub null', { sub: null }, 'token_claim_invalid: sub is null, not a string'],
    ['sub a boolean', { sub: true }, 'token_claim_invalid: sub is a boolean, not a string'],
    ['numeric client_id', { client_id: 7 }, 'token_claim_invalid: client_id is a number, not a string'],
    ['client_id an array', { client_id: ['web'] }, 'token_claim_invalid: client_id is an array, not a string'],
    ['numeric azp, even behind a string client_id', { client_id: 'web', azp: 7 }, 'token_claim_invalid: azp is a number, not a string'],
    ['jti a number', { jti: 1 }, 'token_claim_invalid: jti is a number, not a string'],
    ['iss an array', { iss: [LAX] }, 'token_claim_invalid: iss is an array, not a string'],
    // aud: a string or an array of strings (RFC 7519 §4.1.3)
    ['aud an array of strings', { aud: ['other', 'gw'] }, 'ok'],
    ['aud a nested array', { aud: [['gw']] }, 'token_claim_invalid: aud is an array, not a string or an array of strings'],
    ['aud with a number beside gw', { aud: ['gw', 5] }, 'token_claim_invalid: aud is an array, not a string or an array of strings'],
    ['aud a number', { aud: 5 }, 'token_claim_invalid: aud is a number, not a string or an array of strings'],
    ['aud an object', { aud: { gw: true } }, 'token_claim_invalid: aud is an object, not a string or an array of strings'],
    ['aud null', { aud: null }, 'token_claim_invalid: aud is null, not a string or an array of strings'],
    // exp, nbf, iat: finite numbers (RFC 7519 §4.1.4–4.1.6)
    ['exp a string', { exp: String(NOW_S + 300) }, 'token_claim_invalid: exp is a string, not a number (seconds since the epoch)'],
    ['exp null', { exp: null }, 'token_claim_invalid: exp is null, not a number (seconds since the epoch)'],
    ['exp 1e400, which JSON.parse reads as Infinity', JSON.parse('{"exp":1e400}') as Record<string, unknown>, 'token_claim_invalid: exp is a number, not a number (seconds since the epoch)'],
    ['exp an array', { exp: [NOW_S + 300] }, 'token_claim_invalid: exp is an array, not a number (seconds since the epoch)'],
    ['exp missing', { exp: undefined }, 'token_claim_invalid: exp is required'],
    ['nbf a string', { nbf: String(NOW_S) }, 'token_claim_invalid: nbf is a string, not a number (seconds since the epoch)'],
    ['nbf null', { nbf: null }, 'token_claim_invalid: nbf is null, not a number (seconds since the epoch)'],
    ['iat a string', { iat: 'yesterday' }, 'token_claim_invalid: iat is a string, not a number (seconds since the epoch)'],
    ['iat a boolean', { iat: true }, 'token_claim_invalid: iat is a boolean, not a number (seconds since the epoch)'],
    // the configured claims: subject a string, scope and roles a string or an array of non-empty strings
    ['the configured subject numeric', { preferred_username: 42 }, 'token_claim_invalid: preferred_username is a number, not a string'],
    ['scope an array of strings', { scope: ['read', 'write'] }, 'ok'],
    ['scope a number', { scope: 42 }, 'token_claim_invalid: scope is a number, not a string or an array of non-empty strings'],
    ['scope an object', { scope: { admin: true } }, 'token_claim_invalid: scope is an object, not a string or an array of non-empty strings'],
    ['scope an array holding an object', { scope: ['read', { admin: true }] }, 'token_claim_invalid: scope is an array, not a string or an array of non-empty strings'],
    ['scope an array holding an empty string', { scope: ['read', ''] }, 'token_claim_invalid: scope is an array, not a string or an array of non-empty strings'],
    ['scp wrong while scope wins', { scope: 'read', scp: [1] }, 'token_claim_invalid: scp is an array, not a string or an array of non-empty strings'],
    ['permissions is not configured for this issuer: not read, not checked', { permissions: 7 }, 'ok'],
    ['nested roles an array of strings', { realm_access: { roles: ['admin'] } }, 'ok'],
    ['nested roles a number', { realm_access: { roles: 1 } }, 'token_claim_invalid: realm_access.roles is a number, not a string or an array of non-empty strings'],
    ['nested roles an array holding an array', { realm_access: { roles: [['admin']] } }, 'token_claim_invalid: realm_access.roles is an array, not a string or an array of non-empty strings'],
    // forward.claims (any route): a string or a number; null sends no header
    ['a forwarded claim as a string, a nested one as a number', { tenant: 'acme', org: { id: 7 } }, 'ok'],
    ['a forwarded claim null', { tenant: null }, 'ok'],
    ['a forwarded claim an array', { tenant: ['acme', 'evil'] }, 'token_claim_invalid: tenant is an array, not a string or a number'],
    ['a forwarded claim an object', { tenant: { name: 'acme' } }, 'token_claim_invalid: tenant is an object, not a string or a number'],
    ['a forwarded claim a boolean', { tenant: true }, 'token_claim_invalid: tenant is a boolean, not a string or a number'],
    ['a nested forwarded claim an array', { org: { id: [7] } }, 'token_claim_invalid: org.id is an array, not a string or a number']
  ]
  for (const [name, claims, expected] of cases) t.equal(verdict({ ...BASE, ...claims }), expected, name)
})

t.test('with requireTyp (the RFC 9068 profile) every claim of RFC 9068 §2.2 is required', async (t) => {
  t.equal(verdict(FULL, 'profile'), 'ok', 'all present')
  for (const name of ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti']) {
    t.equal(verdict({ ...FULL, [name]: undefined }, 'profile'), `token_claim_invalid: ${name} is required (requireTyp: the RFC 9068 profile)`, `no ${name}`)
  }
  t.equal(verdict({ ...FULL, aud: [] }, 'profile'), 'token_claim_invalid: aud is required (requireTyp: the RFC 9068 profile)', 'an empty aud names no audience')
  t.equal(verdict({ ...FULL, sub: 1 }, 'profile'), 'token_claim_invalid: sub is a number, not a string', 'present but of the wrong type')
  t.equal(verdict({ ...BASE, aud: undefined, iat: undefined }), 'ok', 'without the profile, aud and iat stay optional (aud is judged by the route policy)')
})

t.test('through the verifier: a wrong type, a missing claim or an iat in the future is 401 invalid_token', async (t) => {
  const key = await makeKey('ES256', 'k1')
  let nowMs = NOW_S * 1000
  const fetch = async (): Promise<Response> => new Response(JSON.stringify({ keys: [key.publicJwk] }), { status: 200, headers: { 'content-type': 'application/json' } })
  const now = (): number => nowMs
  const stores = new Map([...config.issuersById.values()].map((i) => [i.id, new KeyStore(i, { fetch, now })]))
  const verifier = new TokenVerifier(config, stores, null, now)
  const reason = async (claims: Record<string, unknown>, iat = NOW_S): Promise<string> => {
    try {
      await verifier.verify(await mintToken(key, { ...BASE, ...claims }, { iat }))
      return 'ok'
    } catch (err) {
      if (err instanceof GatewayError) return `${err.status} ${err.code} ${err.reason}`
      throw err
    }
  }
  const cases: Array<[name: string, claims: Record<string, unknown>, expected: string]> = [
    ['a good token', {}, 'ok'],
    ['numeric sub', { sub: 1 }, '401 invalid_token token_claim_invalid'],
    ['aud [["gw"]]', { aud: [['gw']] }, '401 invalid_token token_claim_invalid'],
    ['iat exactly the tolerance ahead', { iat: NOW_S + 60 }, 'ok'],
    ['iat one second past the tolerance', { iat: NOW_S + 61 }, '401 invalid_token token_issued_in_future'],
    ['iat a day ahead', { iat: NOW_S + 86_400, exp: NOW_S + 86_700 }, '401 invalid_token token_issued_in_future'],
    ['exp now, within the tolerance', { exp: NOW_S }, 'ok'],
    ['exp a string', { exp: String(NOW_S + 300) }, '401 invalid_token token_claim_invalid']
  ]
  for (const [name, claims, expected] of cases) t.equal(await reason(claims), expected, name)
  nowMs = (NOW_S + 60) * 1000
  t.equal(await reason({ exp: NOW_S }), '401 invalid_token token_expired', 'at exp + tolerance: now must be before exp')
})
