/**
 * DPoP with a real authorization server (docs/dpop.md): oidc-provider with `features.dPoP` issues a token
 * bound to the client's key when the token request carries a proof. scopegate forwards that token with a
 * fresh proof from the same key, and refuses it as Bearer, with another key's proof, or with a replayed one.
 */
import t from 'tap'
import { startEcho } from '../helpers/echo-upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startIdp } from '../helpers/idp.js'
import { makeProof, makeProofKey } from '../helpers/dpop.js'

const API = 'https://todo.api'

t.test('a token oidc-provider bound to the client key passes with the key\'s proof, and only so', async (t) => {
  const idp = await startIdp({ clients: [{ clientId: 'app', clientSecret: 'app-secret', scope: 'read:todos' }], resources: { [API]: { scope: 'read:todos' } } })
  t.teardown(() => idp.close())
  const echo = await startEcho()
  t.teardown(() => echo.close())
  const gw = await startGateway({
    issuers: [{ id: 'idp', issuer: idp.issuer, jwksUri: idp.jwksUri, algorithms: ['RS256'], audiences: [API] }],
    upstreams: { echo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'echo', requireDpop: true, policy: { scopes: { require: ['read:todos'] } } }]
  })
  t.teardown(() => gw.close())

  const client = await makeProofKey('ES256')
  const tokenProof = await makeProof(client, { htm: 'POST', htu: idp.tokenEndpoint, token: '', claims: { ath: undefined } })
  const token = await idp.token({ clientId: 'app', resource: API, scope: 'read:todos', dpop: tokenProof })
  const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { cnf?: { jkt?: string } }
  t.equal(claims.cnf?.jkt, client.jkt, 'oidc-provider bound the token to the client key')

  const htu = `${gw.proxyUrl}/todos`
  const proof = await makeProof(client, { htm: 'GET', htu, token })
  const ok = await send(gw.proxyUrl, '/todos', { headers: { authorization: `DPoP ${token}`, dpop: proof } })
  t.equal(ok.status, 200, 'forwarded with a proof from the bound key')
  t.equal(echo.received.length, 1, 'the upstream saw it')
  t.equal(echo.received[0]?.headers['x-auth-scopes'], 'read:todos', 'with the token\'s scopes')

  const refusals: Array<[string, Record<string, string>, string]> = [
    ['the same proof again', { authorization: `DPoP ${token}`, dpop: proof }, 'invalid_dpop_proof'],
    ['the token as Bearer', { authorization: `Bearer ${token}` }, 'invalid_token'],
    ['a proof from another key', { authorization: `DPoP ${token}`, dpop: await makeProof(await makeProofKey('ES256'), { htm: 'GET', htu, token }) }, 'invalid_token']
  ]
  for (const [label, headers, code] of refusals) {
    const res = await send(gw.proxyUrl, '/todos', { headers })
    t.equal(res.status, 401, `${label}: 401`)
    t.equal(res.json?.error, code, `${label}: ${code}`)
    t.match(res.headers['www-authenticate'], /^DPoP realm="scopegate", error=/, `${label}: DPoP challenge`)
    t.equal(echo.received.length, 1, `${label}: the upstream saw nothing more`)
  }
})
