/**
 * Host-based routes, roles and conditions through a real gateway (docs/policy.md): one scopegate gives
 * `a.example.com/api` and `b.example.com/api` different policies; a condition or a role not met is 403
 * `insufficient_scope` (or the route's `denyStatus.scope`) and the upstream receives nothing; conditions
 * that read the request or the clock are judged on every request, even for a cached token; a CEL runtime
 * error is a denial with its reason in the log, never a 500. Forward auth names the host the Envoy way
 * (Host on the path form) and the Traefik way (X-Forwarded-Host, which wins over the path form's Host).
 */
import t, { type Test } from 'tap'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { send, type TestResponse } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'

const API = 'https://todo.api'

t.test('hosts, roles and conditions end to end', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  let clock = Date.now()
  const gw = await startGateway({
    server: { trustProxy: ['127.0.0.1/32'] },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { todo: { url: echo.url } },
    routes: [
      {
        id: 'a-api',
        match: { path: '/api', prefix: true, host: 'a.example.com' },
        upstream: 'todo',
        policy: { conditions: [{ claim: 'tenant', in: ['acme'] }, { claim: 'email_verified', equals: true }] }
      },
      {
        id: 'b-api',
        match: { path: '/api', prefix: true, host: 'b.example.com' },
        upstream: 'todo',
        policy: { conditions: [{ cel: '"ops" in claims.groups && method in ["GET", "HEAD"]' }], denyStatus: { scope: 401 } }
      },
      {
        id: 'tenants-api',
        match: { path: '/api', prefix: true, host: '*.tenants.example.com' },
        upstream: 'todo',
        policy: { conditions: [{ cel: 'host == claims.tenant + ".tenants.example.com"' }] }
      },
      { id: 'ops', match: { path: '/ops', prefix: true }, upstream: 'todo', policy: { roles: { require: ['ops', 'sre'], match: 'any' } } },
      { id: 'fresh', match: { path: '/fresh', prefix: true }, upstream: 'todo', policy: { conditions: [{ claim: 'auth_time', maxAge: '5m' }] } },
      { id: 'broken', match: { path: '/broken', prefix: true }, upstream: 'todo', policy: { conditions: [{ cel: 'claims.missing == "x"' }] } },
      { id: 'any-api', match: { path: '/api', prefix: true }, upstream: 'todo', auth: 'none' }
    ]
  }, { now: () => clock })
  t.teardown(() => gw.close())

  const token = (claims: Record<string, unknown>): Promise<string> => mintToken(key, {
    iss: jwks.issuer, aud: API, sub: 'alice', client_id: 'todo-web', scope: 'read:todos', ...claims
  }, { iat: Math.floor(clock / 1000), expiresIn: 3600 })
  const acme = await token({ tenant: 'acme', email_verified: true, groups: ['dev'], roles: ['dev'] })
  const globex = await token({ tenant: 'globex', email_verified: true, groups: ['ops'], roles: ['sre'] })
  const unverified = await token({ tenant: 'acme', email_verified: false })

  /** What the client got, and what the upstream received for it (undefined: nothing). */
  const through = async (target: string, host: string, bearer?: string, method = 'GET'): Promise<{ res: TestResponse, route: unknown }> => {
    const before = echo.received.length
    const headers: Record<string, string> = { host }
    if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`
    const res = await send(gw.proxyUrl, target, { method, headers })
    const seen = echo.received.slice(before)
    return { res, route: seen.length === 0 ? undefined : seen[0]?.headers['x-auth-route'] }
  }
  const allowed = async (t: Test, target: string, host: string, bearer: string | undefined, route: string, method = 'GET'): Promise<void> => {
    const { res, route: seen } = await through(target, host, bearer, method)
    t.equal(res.status, 200, `${method} ${host}${target} allowed`)
    t.equal(seen, route, `the upstream received it on route ${route}`)
  }
  const refused = async (t: Test, target: string, host: string, bearer: string | undefined, status: number, method = 'GET'): Promise<TestResponse> => {
    const { res, route } = await through(target, host, bearer, method)
    t.equal(res.status, status, `${method} ${host}${target} refused`)
    t.equal(res.json?.error, 'insufficient_scope')
    t.equal(route, undefined, 'the upstream received nothing')
    return res
  }

  t.test('the same path on two hosts: two policies', async (t) => {
    await allowed(t, '/api/x', 'a.example.com', acme, 'a-api')
    await refused(t, '/api/x', 'a.example.com', globex, 403)
    await allowed(t, '/api/x', 'b.example.com', globex, 'b-api')
    await refused(t, '/api/x', 'b.example.com', acme, 401)
    await refused(t, '/api/x', 'a.example.com', unverified, 403)
  })

  t.test('the host is compared without case, port and trailing dot', async (t) => {
    await refused(t, '/api/x', 'A.Example.COM:8080', globex, 403)
    await refused(t, '/api/x', 'a.example.com.', globex, 403)
    await allowed(t, '/api/x', 'A.EXAMPLE.com.:443', acme, 'a-api')
  })

  t.test('another host falls through to the route for every host', async (t) => {
    await allowed(t, '/api/x', 'c.example.com', undefined, 'any-api')
    await allowed(t, '/api/x', 'example.com', undefined, 'any-api')
  })

  t.test('a wildcard host, with a condition reading the host', async (t) => {
    await allowed(t, '/api/x', 'acme.tenants.example.com', acme, 'tenants-api')
    await refused(t, '/api/x', 'globex.tenants.example.com', acme, 403)
    await allowed(t, '/api/x', 'globex.tenants.example.com', globex, 'tenants-api')
  })

  t.test('a request-reading condition is judged on every request, the token cached or not', async (t) => {
    await allowed(t, '/api/x', 'b.example.com', globex, 'b-api', 'GET')
    await refused(t, '/api/x', 'b.example.com', globex, 401, 'DELETE')
    await allowed(t, '/api/x', 'b.example.com', globex, 'b-api', 'GET')
  })

  t.test('roles gate a route directly', async (t) => {
    await allowed(t, '/ops/run', 'any.example.com', globex, 'ops')
    const res = await refused(t, '/ops/run', 'any.example.com', acme, 403)
    t.notMatch(res.body, /dev|ops|sre/, 'the body names no roles')
    t.match(gw.decisions().at(-1), { decision: 'deny', reason: 'role_missing', detail: /needs any of roles \[ops sre\], has \[dev\]/ })
  })

  t.test('maxAge follows the clock, for the same cached token', async (t) => {
    const fresh = await token({ auth_time: Math.floor(clock / 1000) - 60 })
    await allowed(t, '/fresh', 'x', fresh, 'fresh')
    clock += 10 * 60_000
    await refused(t, '/fresh', 'x', fresh, 403)
    t.match(gw.decisions().at(-1), { reason: 'condition_failed', detail: /auth_time no older than 5m/ })
    clock -= 10 * 60_000
  })

  t.test('a CEL runtime error is a denial with a logged reason, not a 500', async (t) => {
    await refused(t, '/broken', 'x', acme, 403)
    t.match(gw.decisions().at(-1), { decision: 'deny', reason: 'condition_failed', detail: /missing/ })
  })

  t.test('forward auth: the Envoy path form\'s Host, and Traefik\'s X-Forwarded-Host', async (t) => {
    const before = echo.received.length
    const envoy = (host: string, bearer: string): Promise<TestResponse> =>
      send(gw.adminUrl, '/decisions/api/x', { headers: { host, authorization: `Bearer ${bearer}` } })
    t.equal((await envoy('a.example.com', acme)).status, 200)
    t.equal((await envoy('a.example.com', acme)).headers['x-auth-route'], 'a-api')
    t.equal((await envoy('a.example.com:443', globex)).status, 403)
    t.equal((await envoy('b.example.com', globex)).headers['x-auth-route'], 'b-api')
    const traefik = (host: string, bearer: string, method = 'GET'): Promise<TestResponse> => send(gw.adminUrl, '/decisions', {
      headers: { host: '127.0.0.1:9090', 'x-forwarded-method': method, 'x-forwarded-uri': '/api/x', 'x-forwarded-host': host, authorization: `Bearer ${bearer}` }
    })
    t.equal((await traefik('b.example.com', globex)).status, 200)
    t.equal((await traefik('b.example.com', globex, 'DELETE')).status, 401, 'denyStatus.scope')
    const wrong = await traefik('a.example.com', globex)
    t.equal(wrong.status, 403)
    t.equal(wrong.json?.error, 'insufficient_scope')
    const overridden = await send(gw.adminUrl, '/decisions/api/x', { headers: { host: 'a.example.com', 'x-forwarded-host': 'b.example.com', authorization: `Bearer ${globex}` } })
    t.equal(overridden.headers['x-auth-route'], 'b-api', 'a trusted X-Forwarded-Host names the host over the path form\'s Host')
    const disagreeing = await send(gw.adminUrl, '/decisions', {
      headers: { 'x-original-method': 'GET', 'x-original-url': 'https://a.example.com/api/x', 'x-forwarded-host': 'b.example.com', authorization: `Bearer ${globex}` }
    })
    t.equal(disagreeing.status, 403, 'two trusted headers naming two hosts: refused')
    t.match(disagreeing.headers['www-authenticate'], /error="invalid_request"/, 'the nginx form carries its code in the challenge')
    t.equal(echo.received.length, before, 'forward auth never reaches the upstream')
  })
})
