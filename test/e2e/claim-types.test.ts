/**
 * Claim types end to end: a token whose claims have other types than their RFCs give them, that lacks
 * a claim the RFC 9068 profile requires, or that was issued in the future is answered 401
 * `invalid_token` with the standard challenge, the decision log names `token_claim_invalid` or
 * `token_issued_in_future`, and the upstream receives nothing. A well-typed token still goes through.
 */
import t from 'tap'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'

t.test('claims of the wrong type are 401 invalid_token, and the upstream sees nothing', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const PROFILE = 'https://profile.example'
  const gw = await startGateway({
    issuers: [
      { id: 'idp', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: ['gw'], clockTolerance: '60s' },
      { id: 'profile', issuer: PROFILE, jwksUri: jwks.url, algorithms: ['ES256'], audiences: ['gw'], requireTyp: true, clockTolerance: '60s' }
    ],
    upstreams: { echo: { url: echo.url } },
    routes: [
      { id: 'orders', match: { path: '/api/orders', prefix: true }, upstream: 'echo', policy: { scopes: { require: ['orders:read'] } }, forward: { claims: { 'x-tenant': 'tenant' } } }
    ]
  })
  t.teardown(() => gw.close())
  const now = Math.floor(Date.now() / 1000)
  const claims = (extra: Record<string, unknown>, iss = jwks.issuer): Record<string, unknown> =>
    ({ iss, aud: 'gw', sub: 'alice', client_id: 'web', scope: 'orders:read', jti: 'j1', tenant: 'acme', ...extra })

  const good = await send(gw.proxyUrl, '/api/orders/1', { headers: bearer(await mintToken(key, claims({}))) })
  t.equal(good.status, 200, 'a well-typed token goes through')
  t.equal(echo.received.length, 1)
  t.equal(echo.received[0]?.headers['x-auth-subject'], 'alice')
  t.equal(echo.received[0]?.headers['x-tenant'], 'acme')

  const cases: Array<[name: string, claims: Record<string, unknown>, reason: string, iat?: number]> = [
    ['numeric sub', claims({ sub: 12345 }), 'token_claim_invalid'],
    ['client_id an array', claims({ client_id: ['web'] }), 'token_claim_invalid'],
    ['aud [["gw"]]', claims({ aud: [['gw']] }), 'token_claim_invalid'],
    ['aud ["gw", 5]', claims({ aud: ['gw', 5] }), 'token_claim_invalid'],
    ['scope an array holding an object', claims({ scope: ['orders:read', { admin: true }] }), 'token_claim_invalid'],
    ['scope a number', claims({ scope: 1 }), 'token_claim_invalid'],
    ['roles an object', claims({ roles: { admin: true } }), 'token_claim_invalid'],
    ['exp a string', claims({ exp: String(now + 300) }), 'token_claim_invalid'],
    ['exp null', claims({ exp: null }), 'token_claim_invalid'],
    ['exp an array', claims({ exp: [now + 300] }), 'token_claim_invalid'],
    ['nbf a string', claims({ nbf: String(now) }), 'token_claim_invalid'],
    ['a forwarded claim an array', claims({ tenant: ['acme', 'evil'] }), 'token_claim_invalid'],
    ['iat a day in the future', claims({ exp: now + 86_700 }), 'token_issued_in_future', now + 86_400],
    ['RFC 9068 profile: no sub', claims({ sub: undefined }, PROFILE), 'token_claim_invalid'],
    ['RFC 9068 profile: no client_id', claims({ client_id: undefined }, PROFILE), 'token_claim_invalid'],
    ['RFC 9068 profile: no jti', claims({ jti: undefined }, PROFILE), 'token_claim_invalid'],
    ['RFC 9068 profile: no aud', claims({ aud: undefined }, PROFILE), 'token_claim_invalid'],
    ['RFC 9068 profile: no iat', claims({ iat: undefined }, PROFILE), 'token_claim_invalid']
  ]
  for (const [name, payload, reason, iat] of cases) {
    const token = await mintToken(key, payload, iat === undefined ? {} : { iat })
    const res = await send(gw.proxyUrl, '/api/orders/1', { headers: bearer(token) })
    t.equal(res.status, 401, `${name}: 401`)
    t.equal(res.json?.error, 'invalid_token', `${name}: invalid_token`)
    t.match(res.headers['www-authenticate'], /^Bearer realm="scopegate", error="invalid_token", error_description="[^"]+"$/, `${name}: challenge`)
    t.notOk(res.body.includes(token), `${name}: the body does not echo the token`)
    t.equal(echo.received.length, 1, `${name}: the upstream saw nothing`)
    t.equal(gw.decisions().at(-1)?.reason, reason, `${name}: the log names ${reason}`)
  }

  const profile = await send(gw.proxyUrl, '/api/orders/1', { headers: bearer(await mintToken(key, claims({}, PROFILE))) })
  t.equal(profile.status, 200, 'a complete RFC 9068 token of the profile issuer goes through')
  t.equal(echo.received.length, 2)
  t.notOk(gw.rawLog().includes('eyJ'), 'no token in the log')
})
