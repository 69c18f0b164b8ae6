/**
 * A reload never answers from what the old config decided: a token verified, cached and allowed (its
 * policy outcome remembered for the route), then a reload that denies its client, and the very same
 * token is refused. The outcome memo belongs to the engine a reload replaces (see docs/caching.md).
 */
import t from 'tap'
import { compileTestConfig, issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'

const AUD = 'https://todo.api'

t.test('a cached, allowed token is refused after a reload that denies its client', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const config = (clientsDenied: string[]): Record<string, unknown> => ({
    issuers: [{ id: 'idp', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo', policy: { clients: { deny: clientsDenied } } }]
  })
  const gw = await startGateway(config([]))
  t.teardown(() => gw.close())
  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', client_id: 'todo-web', scope: 'read:todos' })

  for (const attempt of ['first', 'second']) {
    const before = echo.received.length
    const res = await send(gw.proxyUrl, '/todos/1', { headers: bearer(token) })
    t.equal(res.status, 200, `${attempt} request allowed`)
    t.equal(echo.received.length, before + 1, `${attempt} request reached the upstream`)
    t.equal(echo.received.at(-1)?.headers['x-auth-client-id'], 'todo-web')
  }
  const cache = gw.gateway.current().tokenCache
  t.same([cache.size, cache.hits], [1, 1], 'the second request was answered from the token cache')

  t.equal(await gw.gateway.reload(compileTestConfig(config(['todo-web']))), true, 'the reload is applied')

  const before = echo.received.length
  const res = await send(gw.proxyUrl, '/todos/1', { headers: bearer(token) })
  t.equal(res.status, 401, 'the same token is refused under the new config')
  t.match(res.json, { error: 'end_users_not_allowed' })
  t.equal(echo.received.length, before, 'the upstream received nothing')
  t.match(gw.decisions().at(-1), { status: 401, reason: 'client_denied' })
  t.equal(jwks.fetches, 1, 'the keys were not fetched again: only the policy changed')
})
