/**
 * Introspection when the endpoint misbehaves (docs/opaque-tokens.md, "When the endpoint fails"): a
 * scripted endpoint on port 0 answers slowly, with 500, with garbage, with too much, with `active: false`,
 * or is not there at all. The gateway must answer 503 `temporarily_unavailable` with `Retry-After` for
 * every failure of the endpoint (never a 401 that would log a user out) and 401 `invalid_token` only when
 * the IdP said the token is not active. Each case asserts what the client got, that the upstream got
 * nothing, and what the endpoint received (client authentication, never a secret in the logs).
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { jwtVerify } from 'jose'
import t from 'tap'
import type { Test } from 'tap'
import { closedPort } from '../helpers/echo-upstream.js'
import { issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import { bearer, send, type TestResponse } from '../helpers/http.js'
import { makeKey, mintToken } from '../helpers/jwks-server.js'
import { introspectionConfig, startScriptedEndpoint, type ReceivedCall, type ScriptedAnswer } from './scripted-endpoint.js'

const SECRET = 'fault-secret-77c2e0'
const AUD = 'https://api.test'

interface Endpoint {
  url: string
  mode: ScriptedAnswer
  /** Each request: its Authorization header and its form. */
  received: ReceivedCall[]
}

async function startEndpoint (t: Test): Promise<Endpoint> {
  const endpoint: Endpoint = { url: '', mode: 'hang', received: [] }
  const scripted = await startScriptedEndpoint(t, () => endpoint.mode)
  endpoint.url = scripted.url
  endpoint.received = scripted.received
  return endpoint
}

const { key, jwks, echo } = await issuerAndEcho(t)

async function gateway (t: Test, endpoint: string, introspection: Record<string, unknown> = {}, now?: () => number): Promise<TestGateway> {
  const gw = await startGateway(introspectionConfig(jwks, AUD, echo.url,
    { endpoint, clientId: 'gateway', clientSecret: SECRET, timeout: '300ms', retryAfter: '7s', maxBytes: 4096, ...introspection }), now === undefined ? {} : { now })
  t.teardown(() => gw.close())
  return gw
}

function expectUnavailable (t: Test, res: TestResponse): void {
  t.equal(res.status, 503)
  t.equal(res.json?.error, 'temporarily_unavailable')
  t.equal(res.headers['retry-after'], '7')
  t.notOk(res.headers['www-authenticate']?.includes('invalid_token'), 'nothing that would log the user out')
}

const active = (claims: Record<string, unknown> = {}): ScriptedAnswer => ({
  status: 200,
  body: JSON.stringify({ active: true, client_id: 'todo-cli', sub: 'alice', scope: 'read write', aud: AUD, exp: Math.floor(Date.now() / 1000) + 300, ...claims })
})

const failures: Array<[string, ScriptedAnswer]> = [
  ['a slow endpoint (no answer within the timeout)', 'hang'],
  ['500', { status: 500, body: '{"error":"server_error"}' }],
  ['a 400 (the IdP refused our request, not the token)', { status: 400, body: '{"error":"invalid_client"}' }],
  ['garbage', { status: 200, body: '<html>oops</html>', type: 'text/html' }],
  ['a JSON array', { status: 200, body: '[true]' }],
  ['an answer over maxBytes', { status: 200, body: JSON.stringify({ active: true, pad: 'x'.repeat(8192) }) }],
  ['a redirect', { status: 302, body: '' }]
]

for (const [name, mode] of failures) {
  t.test(`${name}: 503 temporarily_unavailable with Retry-After, the upstream gets nothing, nothing is cached`, async (t) => {
    const endpoint = await startEndpoint(t)
    endpoint.mode = mode
    let clock = Date.now()
    const gw = await gateway(t, endpoint.url, {}, () => clock)
    const before = echo.received.length
    const token = `opaque-${name.length}-token-abcdef`
    expectUnavailable(t, await send(gw.proxyUrl, '/api/x', { headers: bearer(token) }))
    t.equal(echo.received.length, before, 'the upstream received nothing')
    t.equal(endpoint.received.length, 1)
    // The endpoint recovers; once the cooldown (5 s) has passed it is asked again: the failure was not cached.
    endpoint.mode = active()
    clock += 5_000
    const res = await send(gw.proxyUrl, '/api/x', { headers: bearer(token) })
    t.equal(res.status, 200)
    t.equal(echo.received.length, before + 1)
    t.equal(endpoint.received.length, 2, 'asked again once it answered')
    t.notOk(gw.rawLog().includes(SECRET), 'no secret in the logs')
    t.notOk(gw.rawLog().includes(token), 'no token in the logs')
  })
}

t.test('a network error (nothing listening): 503, and /readyz and the metrics show it', async (t) => {
  const gw = await gateway(t, `${await closedPort()}/introspect`)
  const before = echo.received.length
  expectUnavailable(t, await send(gw.proxyUrl, '/api/x', { headers: bearer('opaque-network-token') }))
  t.equal(echo.received.length, before)
  const ready = await send(gw.adminUrl, '/readyz')
  t.equal(ready.status, 503, 'not ready: the endpoint fails and has never answered (docs/operations.md#endpoints)')
  t.match(ready.json?.introspection, [{ issuer: 'idp', state: 'unavailable', lastFailure: 'network' }], 'unavailable: failing, and it never answered')
  const metrics = await send(gw.adminUrl, '/metrics')
  t.match(metrics.body, /scopegate_introspections_total\{issuer="idp",result="network"\} 1/)
})

t.test('active: false is 401 invalid_token, remembered for refusalTtl', async (t) => {
  const endpoint = await startEndpoint(t)
  endpoint.mode = { status: 200, body: '{"active":false}' }
  const gw = await gateway(t, endpoint.url)
  const before = echo.received.length
  for (let i = 0; i < 3; i++) {
    const res = await send(gw.proxyUrl, '/api/x', { headers: bearer('opaque-revoked-token') })
    t.equal(res.status, 401)
    t.equal(res.json?.error, 'invalid_token')
    t.match(res.headers['www-authenticate'], /error="invalid_token"/)
  }
  t.equal(echo.received.length, before, 'the upstream received nothing')
  t.equal(endpoint.received.length, 1, 'one call for three requests')
})

const refusals: Array<[string, Record<string, unknown>, string]> = [
  ['an answer for another issuer', { iss: 'https://evil.test' }, 'token_issuer_unknown'],
  ['a refresh token', { token_type: 'refresh_token' }, 'token_type_invalid'],
  ['a numeric sub', { sub: 42 }, 'token_claim_invalid'],
  ['a scope that is an object', { scope: { read: true } }, 'token_claim_invalid'],
  ['an audience not accepted', { aud: 'https://other.test' }, 'token_audience_invalid'],
  ['an expired token', { exp: Math.floor(Date.now() / 1000) - 3600 }, 'token_expired'],
  ['active "true" as a string', { active: 'true' }, 'token_inactive']
]

for (const [name, claims, reason] of refusals) {
  t.test(`${name}: 401 invalid_token (${reason})`, async (t) => {
    const endpoint = await startEndpoint(t)
    endpoint.mode = active(claims)
    const gw = await gateway(t, endpoint.url)
    const before = echo.received.length
    const res = await send(gw.proxyUrl, '/api/x', { headers: bearer('opaque-odd-answer') })
    t.equal(res.status, 401)
    t.equal(res.json?.error, 'invalid_token')
    t.equal(echo.received.length, before, 'the upstream received nothing')
    t.equal(gw.decisions().at(-1)?.reason, reason)
  })
}

t.test('client authentication: client_secret_basic sends the secret in Authorization, client_secret_post in the form', async (t) => {
  const endpoint = await startEndpoint(t)
  endpoint.mode = active()
  const basic = await gateway(t, endpoint.url)
  t.equal((await send(basic.proxyUrl, '/api/x', { headers: bearer('opaque-basic') })).status, 200)
  const post = await gateway(t, endpoint.url, { authMethod: 'client_secret_post' })
  t.equal((await send(post.proxyUrl, '/api/x', { headers: bearer('opaque-post') })).status, 200)
  const [first, second] = endpoint.received
  t.equal(first?.authorization, `Basic ${Buffer.from(`gateway:${SECRET}`).toString('base64')}`)
  t.equal(first?.form.get('client_secret'), null)
  t.equal(first?.form.get('token'), 'opaque-basic')
  t.equal(first?.form.get('token_type_hint'), 'access_token')
  t.equal(second?.authorization, undefined)
  t.equal(second?.form.get('client_id'), 'gateway')
  t.equal(second?.form.get('client_secret'), SECRET)
  for (const gw of [basic, post]) t.notOk(gw.rawLog().includes(SECRET), 'no secret in the logs')
})

t.test('jwtTokens: a JWT of this issuer is introspected, not only verified: a revoked JWT is refused', async (t) => {
  const endpoint = await startEndpoint(t)
  endpoint.mode = { status: 200, body: '{"active":false}' }
  const gw = await gateway(t, endpoint.url, { jwtTokens: true, opaqueTokens: false })
  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', scope: 'read' })
  const before = echo.received.length
  const res = await send(gw.proxyUrl, '/api/x', { headers: bearer(token) })
  t.equal(res.status, 401)
  t.equal(echo.received.length, before)
  t.equal(endpoint.received.length, 1)
  t.equal(endpoint.received[0]?.form.get('token'), token)
  // opaqueTokens: false: a token that is not a JWT is not sent anywhere.
  const opaque = await send(gw.proxyUrl, '/api/x', { headers: bearer('opaque-nowhere') })
  t.equal(opaque.status, 401)
  t.equal(opaque.json?.error, 'invalid_token')
  t.equal(endpoint.received.length, 1, 'not introspected')
})

t.test('private_key_jwt: each call carries a fresh RFC 7523 assertion, signed by the configured key, for this endpoint', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-pkjwt-'))
  const pemFile = join(dir, 'key.pem')
  writeFileSync(pemFile, privateKey.export({ format: 'pem', type: 'pkcs8' }))
  const endpoint = await startEndpoint(t)
  endpoint.mode = active()
  const gw = await gateway(t, endpoint.url, { authMethod: 'private_key_jwt', privateKeyFile: pemFile, clientSecret: undefined })
  for (const token of ['opaque-pk-1', 'opaque-pk-2']) t.equal((await send(gw.proxyUrl, '/api/x', { headers: bearer(token) })).status, 200)
  t.equal(endpoint.received.length, 2)
  const jtis: string[] = []
  for (const call of endpoint.received) {
    t.equal(call.authorization, undefined)
    t.equal(call.form.get('client_id'), 'gateway')
    t.equal(call.form.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
    const { payload, protectedHeader } = await jwtVerify(call.form.get('client_assertion') ?? '', publicKey, { issuer: 'gateway', subject: 'gateway', audience: endpoint.url })
    t.equal(protectedHeader.alg, 'ES256')
    t.ok(typeof payload.exp === 'number' && typeof payload.iat === 'number' && payload.exp - payload.iat <= 60, 'short-lived')
    jtis.push(String(payload.jti))
  }
  t.not(jtis[0], jtis[1], 'a fresh jti per call')
  t.notOk(gw.rawLog().includes('BEGIN PRIVATE KEY'))
})

t.test('jwtResponse: an RFC 9701 signed answer is verified with the issuer\'s keys; anything else is a 503', async (t) => {
  const endpoint = await startEndpoint(t)
  const gw = await gateway(t, endpoint.url, { jwtResponse: true })
  const now = Math.floor(Date.now() / 1000)
  const answer = { active: true, client_id: 'todo-cli', sub: 'alice', scope: 'read', aud: AUD, exp: now + 300 }
  const signed = async (claims: Record<string, unknown>, header: Record<string, unknown> = { typ: 'token-introspection+jwt' }, signer = key): Promise<ScriptedAnswer> => ({
    status: 200,
    type: 'application/token-introspection+jwt',
    body: await mintToken(signer, { iss: jwks.issuer, aud: 'gateway', token_introspection: answer, ...claims }, { header })
  })
  const before = echo.received.length

  endpoint.mode = await signed({})
  const ok = await send(gw.proxyUrl, '/api/x', { headers: bearer('opaque-signed-ok') })
  t.equal(ok.status, 200)
  t.equal(echo.received.length, before + 1)
  t.equal(echo.received.at(-1)?.headers['x-auth-subject'], 'alice')

  const other = await makeKey('ES256')
  const bad: Array<[string, ScriptedAnswer]> = [
    ['an unsigned JSON answer', active()],
    ['another key', await signed({}, undefined, other)],
    ['a wrong typ', await signed({}, { typ: 'JWT' })],
    ['another issuer', await signed({ iss: 'https://evil.test' })],
    ['another audience', await signed({ aud: 'someone-else' })],
    ['no token_introspection', await signed({ token_introspection: undefined })]
  ]
  for (const [name, mode] of bad) {
    endpoint.mode = mode
    const res = await send(gw.proxyUrl, '/api/x', { headers: bearer(`opaque-signed-${name.length}-${name.charCodeAt(3)}`) })
    t.equal(res.status, 503, name)
    t.equal(res.json?.error, 'temporarily_unavailable', name)
  }
  t.equal(echo.received.length, before + 1, 'the upstream got only the good one')
  t.equal(endpoint.received.at(-1)?.form.get('token') !== undefined, true)
})
