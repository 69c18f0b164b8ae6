/**
 * The Envoy ext_authz gRPC service (docs/istio.md), against a running scopegate, with CheckRequests built
 * as Envoy builds them: allows with the identity headers set and the client's copies removed, each kind of
 * denial with the status, body and challenge proxy mode answers, malformed requests, a reload, the trust
 * model for the client address, and a table that holds ext_authz to proxy mode and forward auth. The
 * upstream must never see a Check: ext_authz forwards nothing.
 */
import t from 'tap'
import { compileTestConfig, startGateway, issuerAndEcho, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { envoyCheckRequest, extAuthzClient, headersSet, type CheckResponse, type EnvoyRequest } from '../helpers/ext-authz-client.js'

const API = 'https://todo.api'
const IDENTITY = ['x-auth-subject', 'x-auth-client-id', 'x-auth-scopes', 'x-auth-roles', 'x-auth-issuer', 'x-auth-route']
const CHALLENGE = 'Bearer realm="scopegate"'

/** The denied response's headers as a record. */
const deniedHeaders = (res: CheckResponse): Record<string, string> => headersSet(res.denied_response?.headers)

t.test('ext_authz over gRPC', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const routes = (readScope: string): Array<Record<string, unknown>> => [
    { id: 'todos-read', match: { path: '/todos', prefix: true, methods: ['GET'] }, upstream: 'todo', policy: { scopes: { require: [readScope] } } },
    { id: 'admin', match: { path: '/admin', prefix: true }, upstream: 'todo', policy: { audience: { deny: [API] }, denyStatus: { policy: 403 } } },
    { id: 'internal', match: { path: '/internal', prefix: true }, upstream: 'todo', policy: { network: { allow: ['10.0.0.0/8'] }, denyStatus: { policy: 403 } } },
    { id: 'once', match: { path: '/once', prefix: true }, upstream: 'todo', rateLimit: { limit: 1, window: '1m', key: ['subject'] } },
    { id: 'stripped', match: { path: '/stripped', prefix: true }, upstream: 'todo', forward: { authorization: 'strip', stripHeaders: ['x-debug'] } },
    { id: 'reissued', match: { path: '/reissued', prefix: true }, upstream: 'todo', forward: { authorization: 'reissue' } },
    { id: 'public', match: { path: '/public', prefix: true }, upstream: 'todo', auth: 'optional' }
  ]
  const config = (trustProxy: string[], readScope = 'read:todos'): Record<string, unknown> => ({
    server: { trustProxy, extAuthz: { host: '127.0.0.1', port: 0 } },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API, 'https://other.api'] }],
    upstreams: { todo: { url: echo.url } },
    reissue: { issuer: 'https://scopegate.internal' },
    routes: routes(readScope)
  })
  const gw = await startGateway(config(['127.0.0.1/32']))
  t.teardown(() => gw.close())
  const distrusting = await startGateway(config(['10.0.0.0/8']))
  t.teardown(() => distrusting.close())
  const clientOf = (g: TestGateway): ReturnType<typeof extAuthzClient> => {
    const client = extAuthzClient(`127.0.0.1:${addressPort(g)}`)
    t.teardown(() => client.close())
    return client
  }
  const client = clientOf(gw)
  const check = async (request: EnvoyRequest): Promise<CheckResponse> => await client.check(envoyCheckRequest(request))

  const token = (claims: Record<string, unknown> = {}): Promise<string> => mintToken(key, {
    iss: jwks.issuer, aud: API, sub: 'alice', client_id: 'todo-web', scope: 'read:todos write:todos', roles: ['editor'], ...claims
  })
  const reader = await token()
  const bearer = { authorization: `Bearer ${reader}` }

  t.test('an allow sets the identity headers, overwriting, and removes the client copies', async (t) => {
    const before = echo.received.length
    const res = await check({ path: '/todos/1?x=1', headers: { ...bearer, 'x-auth-subject': 'mallory', 'x-auth_roles': 'admin', 'x-original-url': '/admin', 'x-http-method-override': 'DELETE' } })
    t.equal(res.status?.code, 0, 'gRPC status OK')
    t.equal(res.http_response, 'ok_response')
    t.same(headersSet(res.ok_response?.headers), {
      'x-auth-subject': 'alice',
      'x-auth-client-id': 'todo-web',
      'x-auth-scopes': 'read:todos write:todos',
      'x-auth-roles': 'editor',
      'x-auth-issuer': jwks.issuer,
      'x-auth-route': 'todos-read'
    })
    t.same([...(res.ok_response?.headers_to_remove ?? [])].sort(), ['x-auth_roles', 'x-http-method-override', 'x-original-url'],
      'the client copies proxy mode strips; x-auth-subject is overwritten, x-forwarded-* and x-envoy-* are left to Envoy')
    t.same(res.ok_response?.response_headers_to_add ?? [], [])
    t.equal(echo.received.length, before, 'the upstream saw nothing: ext_authz forwards nothing')
    const line = gw.decisions().at(-1)
    t.match(line, { route: 'todos-read', method: 'GET', path: '/todos/1', decision: 'allow', reason: 'allowed', status: 200, sub: 'alice', endpoint: 'ext_authz' })
    t.notOk(gw.rawLog().includes(reader), 'the token is never logged')
  })

  t.test('an anonymous allow removes every identity header', async (t) => {
    const res = await check({ path: '/public', headers: { 'x-auth-subject': 'mallory' } })
    t.equal(res.status?.code, 0)
    const set = headersSet(res.ok_response?.headers)
    t.same(set, { 'x-auth-route': 'public' }, 'only the route is known')
    t.same([...(res.ok_response?.headers_to_remove ?? [])].sort(), IDENTITY.filter((h) => h !== 'x-auth-route').sort(), 'the rest removed, the forged subject with them')
  })

  t.test('forward.authorization strip removes the Authorization and the route\'s own stripHeaders', async (t) => {
    const res = await check({ path: '/stripped', headers: { ...bearer, 'x-debug': '1' } })
    t.equal(res.status?.code, 0)
    t.ok(res.ok_response?.headers_to_remove?.includes('authorization'))
    t.ok(res.ok_response?.headers_to_remove?.includes('x-debug'))
  })

  t.test('a re-issuing route sets the re-issued Authorization', async (t) => {
    const res = await check({ path: '/reissued', headers: bearer })
    const set = headersSet(res.ok_response?.headers)
    const match = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(set.authorization ?? '')
    t.ok(match, 'a JWT in the Authorization set')
    const claims = JSON.parse(Buffer.from(match?.[2] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>
    t.equal(claims.iss, 'https://scopegate.internal')
    t.equal(claims.sub, 'alice')
    t.not(set.authorization, `Bearer ${reader}`)
  })

  t.test('no token: 401 with the bare challenge, UNAUTHENTICATED', async (t) => {
    const res = await check({ path: '/todos' })
    t.equal(res.status?.code, 16)
    t.equal(res.http_response, 'denied_response')
    t.equal(res.denied_response?.status?.code, 'Unauthorized')
    t.same(JSON.parse(res.denied_response?.body ?? ''), { error: 'unauthorized', error_description: 'a bearer token is required' })
    t.same(deniedHeaders(res), { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'www-authenticate': CHALLENGE })
    t.match(gw.decisions().at(-1), { route: 'todos-read', decision: 'deny', reason: 'token_missing', status: 401, endpoint: 'ext_authz' })
  })

  t.test('a scope the token lacks: 403 insufficient_scope, PERMISSION_DENIED', async (t) => {
    const res = await check({ path: '/todos', headers: { authorization: `Bearer ${await token({ scope: 'write:todos' })}` } })
    t.equal(res.status?.code, 7)
    t.equal(res.denied_response?.status?.code, 'Forbidden')
    t.equal(JSON.parse(res.denied_response?.body ?? '').error, 'insufficient_scope')
    t.match(deniedHeaders(res)['www-authenticate'], /error="insufficient_scope".*scope="read:todos"/)
  })

  t.test('an audience the route denies: 403 end_users_not_allowed', async (t) => {
    const res = await check({ path: '/admin', headers: bearer })
    t.equal(res.status?.code, 7)
    t.equal(res.denied_response?.status?.code, 'Forbidden')
    t.equal(JSON.parse(res.denied_response?.body ?? '').error, 'end_users_not_allowed')
  })

  t.test('a bad token: 401 invalid_token', async (t) => {
    const res = await check({ path: '/todos', headers: { authorization: `Bearer ${reader.slice(0, -4)}AAAA` } })
    t.equal(res.status?.code, 16)
    t.equal(JSON.parse(res.denied_response?.body ?? '').error, 'invalid_token')
    t.match(deniedHeaders(res)['www-authenticate'], /^Bearer realm="scopegate", error="invalid_token"/)
  })

  t.test('rate-limited: 429 with Retry-After and the RateLimit fields', async (t) => {
    const first = await check({ path: '/once', headers: bearer })
    t.equal(first.status?.code, 0)
    const second = await check({ path: '/once', headers: bearer })
    t.equal(second.status?.code, 7)
    t.equal(second.denied_response?.status?.code, 'TooManyRequests')
    t.equal(JSON.parse(second.denied_response?.body ?? '').error, 'rate_limited')
    const headers = deniedHeaders(second)
    t.match(headers['retry-after'], /^[0-9]+$/)
    t.match(headers.ratelimit, /^"once";r=0;t=[0-9]+$/)
    t.match(gw.decisions().at(-1), { route: 'once', decision: 'deny', reason: 'rate_limited', status: 429, endpoint: 'ext_authz' })
  })

  t.test('no route: 404 no_route', async (t) => {
    const res = await check({ path: '/nowhere', headers: bearer })
    t.equal(res.status?.code, 7)
    t.equal(res.denied_response?.status?.code, 'NotFound')
  })

  t.test('headers sent as header_map (encode_raw_headers) are read the same', async (t) => {
    const res = await check({ path: '/todos', headers: bearer, rawHeaders: true })
    t.equal(res.status?.code, 0)
    t.equal(headersSet(res.ok_response?.headers)['x-auth-subject'], 'alice')
  })

  t.test('the client address: source.address from a trusted peer, the peer itself otherwise', async (t) => {
    const inside = await check({ path: '/internal', headers: bearer, sourceIp: '10.1.2.3' })
    t.equal(inside.status?.code, 0, 'trusted Envoy: its source address is the client')
    const outside = await check({ path: '/internal', headers: bearer, sourceIp: '203.0.113.7' })
    t.equal(outside.denied_response?.status?.code, 'Forbidden')
    const untrusted = await clientOf(distrusting).check(envoyCheckRequest({ path: '/internal', headers: bearer, sourceIp: '10.1.2.3' }))
    t.equal(untrusted.denied_response?.status?.code, 'Forbidden', 'untrusted peer: the client is the peer, 127.0.0.1')
  })

  t.test('malformed CheckRequests get a 400 denial, never a gRPC error', async (t) => {
    const cases: Array<[string, Record<string, unknown>]> = [
      ['no attributes', {}],
      ['no http attributes', { attributes: { request: {} } }],
      ['no method', { attributes: { request: { http: { path: '/todos' } } } }],
      ['a method that is no token', { attributes: { request: { http: { method: 'GE T', path: '/todos' } } } }],
      ['no path', { attributes: { request: { http: { method: 'GET' } } } }],
      ['an absolute-form path', { attributes: { request: { http: { method: 'GET', path: 'http://evil/todos' } } } }],
      ['a certificate that is no certificate', { attributes: { source: { certificate: '-----BEGIN%20CERTIFICATE-----%0Anope%0A-----END%20CERTIFICATE-----' }, request: { http: { method: 'GET', path: '/todos' } } } }]
    ]
    for (const [name, request] of cases) {
      const res = await client.check(request)
      t.equal(res.status?.code, 7, `${name}: PERMISSION_DENIED`)
      t.equal(res.denied_response?.status?.code, 'BadRequest', `${name}: 400`)
      t.equal(JSON.parse(res.denied_response?.body ?? '').error, 'invalid_request', name)
    }
    const bad = await check({ path: '/todos/..%2Fadmin', headers: bearer })
    t.equal(bad.denied_response?.status?.code, 'BadRequest', 'a path with no canonical form: 400 as in proxy mode')
    t.match(gw.decisions().at(-1), { decision: 'deny', status: 400, endpoint: 'ext_authz' })
  })

  t.test('a reload changes the answer at once', async (t) => {
    const reloading = await startGateway(config(['127.0.0.1/32']))
    t.teardown(() => reloading.close())
    const c = clientOf(reloading)
    const request = envoyCheckRequest({ path: '/todos', headers: bearer })
    t.equal((await c.check(request)).status?.code, 0)
    t.ok(await reloading.gateway.reload(compileTestConfig(config(['127.0.0.1/32'], 'admin:todos'))))
    const after = await c.check(request)
    t.equal(after.status?.code, 7)
    t.equal(JSON.parse(after.denied_response?.body ?? '').error, 'insufficient_scope')
  })

  t.test('/readyz shows the listener, and shutdown closes it', async (t) => {
    const closing = await startGateway(config(['127.0.0.1/32']))
    const ready = await send(closing.adminUrl, '/readyz')
    t.equal(ready.status, 200)
    t.same(ready.json.extAuthz, { state: 'listening' })
    const c = clientOf(closing)
    t.equal((await c.check(envoyCheckRequest({ path: '/public' }))).status?.code, 0)
    await closing.close()
    t.equal(closing.gateway.extAuthz?.listening, false)
    await t.rejects(c.check(envoyCheckRequest({ path: '/public' })), 'no answer once closed')
  })

  t.test('the verdict equals proxy mode\'s and forward auth\'s for the same request', async (t) => {
    const other = await token({ aud: 'https://other.api', scope: 'read:todos' })
    const table: Array<{ name: string, method?: string, path: string, headers: Record<string, string> }> = [
      { name: 'allowed', path: '/todos/7', headers: bearer },
      { name: 'no token', path: '/todos/7', headers: {} },
      { name: 'missing scope', path: '/todos', headers: { authorization: `Bearer ${await token({ scope: 'x' })}` } },
      { name: 'bad token', path: '/todos', headers: { authorization: 'Bearer abc.def.ghi' } },
      { name: 'audience denied', path: '/admin/x', headers: bearer },
      { name: 'other audience allowed', path: '/admin/x', headers: { authorization: `Bearer ${other}` } },
      { name: 'method not routed', method: 'DELETE', path: '/todos', headers: bearer },
      { name: 'no route', path: '/nowhere', headers: bearer },
      { name: 'two schemes', path: '/todos', headers: { authorization: `Basic Zm9vOmJhcg==, Bearer ${reader}` } },
      { name: 'anonymous on optional', path: '/public/x', headers: {} }
    ]
    for (const row of table) {
      const method = row.method ?? 'GET'
      const seen = echo.received.length
      const proxy = await send(gw.proxyUrl, row.path, { method, headers: { host: 'api.example.com', ...row.headers } })
      const forwardAuth = await send(gw.adminUrl, `/decisions${row.path}`, { method, headers: { host: 'api.example.com', ...row.headers } })
      const before = echo.received.length
      const ext = await check({ method, path: row.path, headers: row.headers })
      t.equal(echo.received.length, before, `${row.name}: ext_authz sent nothing upstream`)
      if (proxy.status === 200) {
        t.equal(echo.received.length, seen + 1, `${row.name}: proxy mode forwarded it`)
        t.equal(ext.status?.code, 0, `${row.name}: allowed by ext_authz too`)
        t.equal(forwardAuth.status, 200, `${row.name}: and by forward auth`)
        const upstream = echo.received[seen]?.headers ?? {}
        const set = headersSet(ext.ok_response?.headers)
        for (const name of IDENTITY) t.equal(set[name], upstream[name], `${row.name}: ${name} as proxy mode forwards it`)
        continue
      }
      t.equal(echo.received.length, seen, `${row.name}: proxy mode forwarded nothing`)
      const body = ext.denied_response?.body ?? ''
      t.equal(body, proxy.body, `${row.name}: the body proxy mode sends`)
      t.equal(JSON.parse(body).error, forwardAuth.json?.error, `${row.name}: forward auth's code`)
      const headers = deniedHeaders(ext)
      t.equal(headers['www-authenticate'], proxy.headers['www-authenticate'], `${row.name}: the challenge proxy mode sends`)
      t.equal(headers['content-type'], proxy.headers['content-type'])
      t.equal(ext.status?.code, proxy.status === 401 ? 16 : 7, `${row.name}: gRPC status`)
      t.equal(httpStatus(ext), proxy.status, `${row.name}: status ${proxy.status}`)
    }
  })
})

/** The port of a gateway's ext_authz listener. */
function addressPort (g: TestGateway): number {
  const port = g.gateway.extAuthz?.boundPort
  if (port == null) throw new Error('no ext_authz listener')
  return port
}

const STATUS_NAMES: Record<string, number> = { BadRequest: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, TooManyRequests: 429, ServiceUnavailable: 503, InternalServerError: 500 }

/** The HTTP status of a denial, as a number. */
function httpStatus (res: CheckResponse): number | undefined {
  const code = res.denied_response?.status?.code
  return typeof code === 'number' ? code : code === undefined ? undefined : STATUS_NAMES[code]
}
