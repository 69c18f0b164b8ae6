/**
 * The Auth0 "restrict access to API scopes" seed rules, end to end: tokens from a real OpenID provider
 * (oidc-provider, client_credentials with resource indicators, RFC 9068 JWT access tokens), scopegate
 * in front of a real echo upstream. Each rule gets an allow and a deny, and each deny is checked for what
 * the client saw and for the upstream having seen nothing.
 */
import t, { type Test } from 'tap'
import { startEcho } from '../helpers/echo-upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { startIdp } from '../helpers/idp.js'
import { makeKey, mintToken, startJwksServer } from '../helpers/jwks-server.js'

const ROLES = 'https://scopegate.test/roles'
const TODO = 'https://todo.api'
const TODO2 = 'http://todoapi2.api'

t.test('seed rules against a real OpenID provider', async (t) => {
  const idp = await startIdp({
    clients: [
      { clientId: 'editor-app', clientSecret: 's1', extraClaims: { [ROLES]: ['editor'] } },
      { clientId: 'user-app', clientSecret: 's2', extraClaims: { [ROLES]: ['user'] } },
      { clientId: 'CLIENT_ID', clientSecret: 's3', extraClaims: { [ROLES]: ['admin'] } },
      { clientId: 'todo-cli', clientSecret: 's4' }
    ],
    resources: {
      [TODO]: { scope: 'read:todos write:todos delete:todos' },
      [TODO2]: { scope: 'read:todos write:todos delete:todos' }
    }
  })
  t.teardown(() => idp.close())
  // Tokens without `aud` cannot come from oidc-provider; a second issuer signs them in the test.
  const key = await makeKey('ES256')
  const other = await startJwksServer([key])
  t.teardown(() => other.close())
  const echo = await startEcho()
  t.teardown(() => echo.close())

  const gw = await startGateway({
    issuers: [
      { id: 'idp', issuer: idp.issuer, discovery: true, algorithms: ['RS256'], audiences: [TODO, TODO2], requireTyp: true, claims: { roles: ROLES } },
      { id: 'test', issuer: other.issuer, jwksUri: other.url, algorithms: ['ES256'], audiences: [TODO], claims: { roles: ROLES } }
    ],
    upstreams: { todo: { url: echo.url } },
    defaults: { policy: { audience: { deny: [TODO2], denyMissing: true }, clients: { deny: ['CLIENT_ID'] } } },
    routes: [
      {
        id: 'todos',
        match: { path: '/todos', prefix: true },
        upstream: 'todo',
        policy: {
          grants: { roles: { admin: ['*'], editor: ['read:todos', 'write:todos'], user: ['read:todos'] } },
          scopes: { require: ['read:todos'] }
        }
      },
      {
        id: 'reports',
        match: { path: '/reports', prefix: true },
        upstream: 'todo',
        policy: { grants: { clients: { 'todo-cli': ['read:todos'] } }, scopes: { require: ['read:todos'] } }
      },
      {
        id: 'internal',
        match: { path: '/internal', prefix: true },
        upstream: 'todo',
        policy: { network: { allow: ['10.0.0.0/8'] } }
      }
    ]
  })
  t.teardown(() => gw.close())

  const editorToken = await idp.token({ clientId: 'editor-app', resource: TODO, scope: 'read:todos write:todos delete:todos' })

  const expectDenied = async (t: Test, path: string, token: string, status: number, code: string): Promise<void> => {
    const before = echo.received.length
    const res = await send(gw.proxyUrl, path, { headers: bearer(token) })
    t.equal(res.status, status, 'status')
    t.equal(res.json?.error, code, 'error code')
    t.match(res.headers['www-authenticate'], new RegExp(`^Bearer realm="scopegate", error="${code}"`))
    t.equal(res.headers['cache-control'], 'no-store')
    t.equal(echo.received.length, before, 'the upstream received nothing')
  }

  t.test('allow: a token for the API, from an allowed application', async (t) => {
    const res = await send(gw.proxyUrl, '/todos/1', { headers: bearer(editorToken) })
    t.equal(res.status, 200)
    const seen = echo.received.at(-1)
    t.equal(seen?.url, '/todos/1')
    t.equal(seen?.headers['x-auth-subject'], 'editor-app')
    t.equal(seen?.headers['x-auth-client-id'], 'editor-app')
    t.equal(seen?.headers['x-auth-issuer'], idp.issuer)
    t.equal(seen?.headers['x-auth-route'], 'todos')
    t.equal(seen?.headers['x-auth-roles'], 'editor')
    t.equal(seen?.headers['x-auth-scopes'], 'read:todos write:todos', 'delete:todos is narrowed away')
    t.equal(seen?.headers.authorization, `Bearer ${editorToken}`, 'authorization: keep forwards the token as received')
  })

  t.test('deny: the audience is the denied API', async (t) => {
    const token = await idp.token({ clientId: 'editor-app', resource: TODO2, scope: 'read:todos' })
    await expectDenied(t, '/todos', token, 401, 'end_users_not_allowed')
  })

  t.test('deny: the audience is missing', async (t) => {
    const token = await mintToken(key, { iss: other.issuer, sub: 'alice', client_id: 'editor-app', scope: 'read:todos', [ROLES]: ['editor'] })
    await expectDenied(t, '/todos', token, 401, 'end_users_not_allowed')
  })

  t.test('allow: the same issuer with an audience', async (t) => {
    const token = await mintToken(key, { iss: other.issuer, aud: TODO, sub: 'alice', client_id: 'editor-app', scope: 'read:todos', [ROLES]: ['editor'] })
    const res = await send(gw.proxyUrl, '/todos', { headers: bearer(token) })
    t.equal(res.status, 200)
    t.equal(echo.received.at(-1)?.headers['x-auth-subject'], 'alice')
  })

  t.test('deny: the application is denied, whatever its roles', async (t) => {
    const token = await idp.token({ clientId: 'CLIENT_ID', resource: TODO, scope: 'read:todos' })
    await expectDenied(t, '/todos', token, 401, 'end_users_not_allowed')
  })

  t.test('role grants: a user may read but keeps only read:todos', async (t) => {
    const token = await idp.token({ clientId: 'user-app', resource: TODO, scope: 'read:todos write:todos' })
    const res = await send(gw.proxyUrl, '/todos', { headers: bearer(token) })
    t.equal(res.status, 200)
    t.equal(echo.received.at(-1)?.headers['x-auth-scopes'], 'read:todos')
  })

  t.test('role grants: a token asking only for what the role does not grant is refused', async (t) => {
    const token = await idp.token({ clientId: 'user-app', resource: TODO, scope: 'write:todos' })
    await expectDenied(t, '/todos', token, 403, 'insufficient_scope')
  })

  t.test('application association: todo-cli is granted read:todos only', async (t) => {
    const token = await idp.token({ clientId: 'todo-cli', resource: TODO, scope: 'read:todos delete:todos' })
    const res = await send(gw.proxyUrl, '/reports', { headers: bearer(token) })
    t.equal(res.status, 200)
    t.equal(echo.received.at(-1)?.headers['x-auth-scopes'], 'read:todos')
    const denied = await idp.token({ clientId: 'editor-app', resource: TODO, scope: 'read:todos' })
    await expectDenied(t, '/reports', denied, 403, 'insufficient_scope')
  })

  t.test('location: a route open only to 10.0.0.0/8 refuses loopback clients', async (t) => {
    await expectDenied(t, '/internal/x', editorToken, 401, 'end_users_not_allowed')
  })
})
