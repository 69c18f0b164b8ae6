/**
 * Scope narrowing (docs/config.md#narrowing): `effective = tokenScopes ∩ rolesGrant ∩ clientsGrant`; a grant map that
 * is not configured does not narrow, a principal it does not name is granted nothing, `"*"` grants every
 * requested scope; required scopes are checked against `effective`, and the upstream sees `effective`
 * in the token's order. Tokens come from a real OpenID provider (roles as a top-level claim whose name
 * is a URL) and, for shapes it cannot issue, from jose (Keycloak's nested `realm_access.roles`, `scp`
 * arrays, Auth0's `permissions`).
 */
import t, { type Test } from 'tap'
import { startEcho } from '../helpers/echo-upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { startIdp } from '../helpers/idp.js'
import { makeKey, mintToken, startJwksServer } from '../helpers/jwks-server.js'

const ROLES = 'https://scopegate.test/roles'
const TODO = 'https://todo.api'
const ALL = 'read:todos write:todos delete:todos'

t.test('scope narrowing', async (t) => {
  const idp = await startIdp({
    clients: [
      { clientId: 'admin-app', clientSecret: 's1', extraClaims: { [ROLES]: ['admin'] } },
      { clientId: 'editor-app', clientSecret: 's2', extraClaims: { [ROLES]: ['editor'] } },
      { clientId: 'user-app', clientSecret: 's3', extraClaims: { [ROLES]: ['user'] } },
      { clientId: 'plain-app', clientSecret: 's4' },
      { clientId: 'odd-app', clientSecret: 's5', extraClaims: { [ROLES]: ['auditor'] } },
      { clientId: 'multi-app', clientSecret: 's6', extraClaims: { [ROLES]: ['user', 'auditor', 'editor'] } }
    ],
    resources: { [TODO]: { scope: ALL } }
  })
  t.teardown(() => idp.close())
  const key = await makeKey('RS256')
  const kc = await startJwksServer([key])
  t.teardown(() => kc.close())
  const echo = await startEcho()
  t.teardown(() => echo.close())

  const roleGrants = { admin: ['*'], editor: ['read:todos', 'write:todos'], user: ['read:todos'] }
  const gw = await startGateway({
    issuers: [
      { id: 'idp', issuer: idp.issuer, discovery: true, algorithms: ['RS256'], audiences: [TODO], requireTyp: true, claims: { roles: ROLES } },
      { id: 'keycloak', issuer: kc.issuer, jwksUri: kc.url, algorithms: ['RS256'], audiences: [TODO], claims: { roles: ['realm_access', 'roles'], clientId: 'azp' } }
    ],
    upstreams: { echo: { url: echo.url } },
    routes: [
      { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'echo', policy: { grants: { roles: roleGrants }, scopes: { require: ['read:todos'] } } },
      { id: 'open', match: { path: '/open', prefix: true }, upstream: 'echo', policy: { grants: { roles: roleGrants } } },
      {
        id: 'combined',
        match: { path: '/combined', prefix: true },
        upstream: 'echo',
        policy: {
          grants: {
            roles: roleGrants,
            clients: { 'admin-app': ['read:todos', 'delete:todos'], 'editor-app': ['read:todos', 'delete:todos'], 'user-app': ['read:todos'] }
          }
        }
      },
      { id: 'by-client', match: { path: '/by-client', prefix: true }, upstream: 'echo', policy: { grants: { clients: { 'editor-app': ['write:todos'] } } } },
      { id: 'ungranted', match: { path: '/ungranted', prefix: true }, upstream: 'echo', policy: { scopes: { require: ['delete:todos'] } } },
      { id: 'any', match: { path: '/any', prefix: true }, upstream: 'echo', policy: { grants: { roles: roleGrants }, scopes: { require: ['write:todos', 'delete:todos'], match: 'any' } } }
    ]
  })
  t.teardown(() => gw.close())

  const idpToken = (clientId: string, scope = ALL): Promise<string> => idp.token({ clientId, resource: TODO, scope })

  /** Sends and expects an allow; returns the scopes the upstream received. */
  const allowed = async (t: Test, target: string, token: string): Promise<string | undefined> => {
    const before = echo.received.length
    const res = await send(gw.proxyUrl, target, { headers: bearer(token) })
    t.equal(res.status, 200, 'allowed')
    t.equal(echo.received.length, before + 1, 'the upstream received it')
    const scopes = echo.received.at(-1)?.headers['x-auth-scopes']
    return Array.isArray(scopes) ? scopes.join('|') : scopes
  }

  const refused = async (t: Test, target: string, token: string, scope: string): Promise<void> => {
    const before = echo.received.length
    const res = await send(gw.proxyUrl, target, { headers: bearer(token) })
    t.equal(res.status, 403)
    t.equal(res.json?.error, 'insufficient_scope')
    t.equal(res.headers['cache-control'], 'no-store')
    t.equal(res.headers['www-authenticate'],
      `Bearer realm="scopegate", error="insufficient_scope", error_description="${res.json?.error_description as string}", scope="${scope}"`)
    t.equal(echo.received.length, before, 'the upstream received nothing')
  }

  t.test('role grants from a real OpenID provider', async (t) => {
    const cases: Array<[string, string, string, string, string]> = [
      ['admin ("*") keeps every requested scope', '/todos', 'admin-app', ALL, ALL],
      ['admin ("*") keeps only what was requested', '/open', 'admin-app', 'write:todos delete:todos', 'write:todos delete:todos'],
      ['editor keeps read and write', '/todos', 'editor-app', ALL, 'read:todos write:todos'],
      ['user keeps read only', '/todos', 'user-app', ALL, 'read:todos'],
      ['several roles: the union of their grants', '/todos', 'multi-app', ALL, 'read:todos write:todos']
    ]
    for (const [name, target, client, requested, expected] of cases) {
      await t.test(name, async (t) => {
        t.equal(await allowed(t, target, await idpToken(client, requested)), expected)
        t.equal(echo.received.at(-1)?.headers['x-auth-route'], target.slice(1))
      })
    }
  })

  t.test('no roles claim at all: granted nothing', async (t) => {
    const token = await idpToken('plain-app')
    await refused(t, '/todos', token, 'read:todos')
    t.equal(await allowed(t, '/open', token), '', 'on a route with no required scopes: allowed with empty x-auth-scopes')
    t.equal(echo.received.at(-1)?.headers['x-auth-roles'], undefined, 'no roles header')
  })

  t.test('an unknown role: granted nothing', async (t) => {
    const token = await idpToken('odd-app')
    await refused(t, '/todos', token, 'read:todos')
    t.equal(await allowed(t, '/open', token), '')
    t.equal(echo.received.at(-1)?.headers['x-auth-roles'], 'auditor')
  })

  t.test('required scopes are checked against the narrowed scopes, never the raw token', async (t) => {
    // user-app's token carries write:todos and delete:todos, but the user role grants neither.
    await refused(t, '/any', await idpToken('user-app'), 'write:todos delete:todos')
    t.equal(await allowed(t, '/any', await idpToken('editor-app')), 'read:todos write:todos', 'match: any needs one of them')
  })

  t.test('without grant maps nothing is narrowed', async (t) => {
    t.equal(await allowed(t, '/ungranted', await idpToken('plain-app')), ALL)
  })

  t.test('roles and client grants combined: the intersection of both', async (t) => {
    const cases: Array<[string, string, string]> = [
      ['admin ("*") ∩ admin-app', 'admin-app', 'read:todos delete:todos'],
      ['editor ∩ editor-app', 'editor-app', 'read:todos'],
      ['user ∩ user-app', 'user-app', 'read:todos'],
      ['a client the clients map does not name gets nothing, whatever its roles', 'multi-app', '']
    ]
    for (const [name, client, expected] of cases) {
      await t.test(name, async (t) => { t.equal(await allowed(t, '/combined', await idpToken(client)), expected) })
    }
  })

  t.test('client grants alone', async (t) => {
    t.equal(await allowed(t, '/by-client', await idpToken('editor-app')), 'write:todos')
    t.equal(await allowed(t, '/by-client', await idpToken('admin-app')), '', 'admin role does not help where only client grants apply')
  })

  t.test('token shapes oidc-provider cannot issue', async (t) => {
    const mint = (claims: Record<string, unknown>): Promise<string> =>
      mintToken(key, { iss: kc.issuer, aud: TODO, sub: 'kc-user', azp: 'kc-app', ...claims })
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['Keycloak nested realm_access.roles', { scope: ALL, realm_access: { roles: ['editor'] } }, 'read:todos write:todos'],
      ['nested roles holding "*" via admin', { scope: ALL, realm_access: { roles: ['offline_access', 'admin'] } }, ALL],
      ['a top-level roles claim is ignored when the issuer reads nested roles', { scope: ALL, roles: ['admin'], realm_access: { roles: ['user'] } }, 'read:todos'],
      ['scopes as an scp array', { scp: ['read:todos', 'write:todos', 'delete:todos'], realm_access: { roles: ['editor'] } }, 'read:todos write:todos'],
      ['scopes as Auth0 permissions', { permissions: ['delete:todos', 'read:todos'], realm_access: { roles: ['admin'] } }, 'delete:todos read:todos'],
      ['scope wins over scp when both are present', { scope: 'read:todos', scp: ['write:todos'], realm_access: { roles: ['admin'] } }, 'read:todos'],
      ['the token\'s order is kept, not the grant\'s', { scope: 'write:todos delete:todos read:todos', realm_access: { roles: ['editor'] } }, 'write:todos read:todos'],
      ['the token\'s order is kept under "*"', { scp: ['delete:todos', 'write:todos', 'read:todos'], realm_access: { roles: ['admin'] } }, 'delete:todos write:todos read:todos']
    ]
    for (const [name, claims, expected] of cases) {
      await t.test(name, async (t) => {
        t.equal(await allowed(t, '/todos', await mint(claims)), expected)
        t.equal(echo.received.at(-1)?.headers['x-auth-client-id'], 'kc-app')
      })
    }
    await t.test('nested roles missing: granted nothing', async (t) => {
      await refused(t, '/todos', await mint({ scope: ALL, realm_access: {} }), 'read:todos')
    })
    await t.test('nested roles of the wrong shape: granted nothing', async (t) => {
      await refused(t, '/todos', await mint({ scope: ALL, realm_access: 'admin' }), 'read:todos')
    })
  })
})
