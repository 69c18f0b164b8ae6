/**
 * Forward auth on the admin listener, called directly the way each ingress family calls it: Envoy
 * ext_authz (the original path after `/decisions`, the call's own method), Traefik ForwardAuth
 * (`X-Forwarded-Method` / `X-Forwarded-Uri`) and ingress-nginx (`X-Original-Method` / `X-Original-URL`).
 * Two gateways share one config except `server.trustProxy`: one trusts 127.0.0.1 (where the test's
 * calls come from), the other only 10.0.0.0/8, so the same headers are believed by one and not the other.
 */
import t, { type Test } from 'tap'
import { startEcho } from '../helpers/echo-upstream.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { send, type TestResponse } from '../helpers/http.js'
import { makeKey, mintToken, startJwksServer } from '../helpers/jwks-server.js'

const API = 'https://todo.api'
const IDENTITY = ['x-auth-subject', 'x-auth-client-id', 'x-auth-scopes', 'x-auth-roles', 'x-auth-issuer', 'x-auth-route']

t.test('forward auth: /decisions', async (t) => {
  const key = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  // An issuer whose keys are never available: its tokens meet 503 temporarily_unavailable in proxy mode.
  const downKey = await makeKey('ES256')
  const down = await startJwksServer([downKey])
  down.setMode('down')
  t.teardown(() => down.close())
  const echo = await startEcho()
  t.teardown(() => echo.close())

  const config = (trustProxy: string[]): Record<string, unknown> => ({
    server: { trustProxy },
    issuers: [
      { id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] },
      { id: 'down', issuer: down.issuer, jwksUri: down.url, algorithms: ['ES256'], audiences: [API], jwks: { cooldown: '1h' } }
    ],
    upstreams: { todo: { url: echo.url } },
    defaults: { policy: { audience: { denyMissing: true }, clients: { deny: ['CLIENT_ID'] } } },
    routes: [
      { id: 'todos-read', match: { path: '/todos', prefix: true, methods: ['GET'] }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } } },
      { id: 'internal', match: { path: '/internal', prefix: true }, upstream: 'todo', policy: { network: { allow: ['10.0.0.0/8'] } } },
      { id: 'audited', match: { path: '/audited', prefix: true }, upstream: 'todo', mode: 'audit', policy: { scopes: { require: ['admin'] } } },
      { id: 'public', match: { path: '/public', prefix: true }, upstream: 'todo', auth: 'optional' },
      { id: 'live', match: { path: '/live', prefix: true }, upstream: 'todo', forwardAuth: { cacheHints: false } }
    ]
  })
  const trusting = await startGateway(config(['127.0.0.1/32']))
  t.teardown(() => trusting.close())
  const distrusting = await startGateway(config(['10.0.0.0/8']))
  t.teardown(() => distrusting.close())

  const token = (claims: Record<string, unknown> = {}, expiresIn?: number): Promise<string> => mintToken(key, {
    iss: jwks.issuer, aud: API, sub: 'alice', client_id: 'todo-web', scope: 'read:todos write:todos', roles: ['editor'], ...claims
  }, expiresIn === undefined ? {} : { expiresIn })
  const reader = await token()

  /** A call's answer, and whether the call named its request the nginx way (X-Original-URI or -URL). */
  type Answer = TestResponse & { nginxForm: boolean }
  const call = async (gw: TestGateway, target: string, headers: Record<string, string> | string[] = {}, method = 'GET'): Promise<Answer> => {
    const names = Array.isArray(headers) ? headers.filter((_, i) => i % 2 === 0) : Object.keys(headers)
    return { ...await send(gw.adminUrl, target, { method, headers }), nginxForm: names.some((n) => /^x-original-ur[il]$/i.test(n)) }
  }
  /** The `error` code a denial carries: in its JSON body, or for the nginx form (no body) in its challenge. */
  const errorCode = (t: Test, res: Answer): unknown => {
    if (!res.nginxForm) return res.json?.error
    t.equal(res.body, '', 'the nginx form: no body, which nginx would have to close the connection to skip')
    t.equal(res.headers['content-length'], '0')
    return /error="([a-z_]+)"/.exec(res.headers['www-authenticate'] ?? '')?.[1] ?? 'unauthorized'
  }
  const traefik = (uri: string, method = 'GET', auth?: string): Record<string, string> => ({
    'x-forwarded-method': method,
    'x-forwarded-uri': uri,
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'api.example.com',
    'x-forwarded-for': '203.0.113.7',
    ...(auth === undefined ? {} : { authorization: `Bearer ${auth}` })
  })
  const ingressNginx = (url: string, method = 'GET', auth?: string): Record<string, string> => ({
    'x-original-method': method,
    'x-original-url': url,
    'x-real-ip': '203.0.113.7',
    'x-forwarded-for': '203.0.113.7',
    ...(auth === undefined ? {} : { authorization: `Bearer ${auth}` })
  })

  const expectAllowed = (t: Test, res: TestResponse, route: string): void => {
    t.equal(res.status, 200, 'status 200')
    t.equal(res.body, '', 'empty body')
    t.equal(res.headers['x-auth-route'], route, 'x-auth-route')
  }
  /** `kept`: a denial the cache key alone decides, which an ingress may keep for the default 5 s (forwardAuth.denialCache). */
  const expectDenied = (t: Test, res: Answer, status: 401 | 403, code: string, kept = false): void => {
    t.equal(res.status, status, `status ${status}`)
    t.equal(errorCode(t, res), code, 'error code')
    t.equal(res.headers['cache-control'], kept ? 's-maxage=5, max-age=0' : 'no-store', kept ? 'kept 5 s' : 'never kept')
    t.equal(res.headers.vary, kept ? 'authorization' : undefined, kept ? 'one entry per token' : 'no vary')
    if (res.nginxForm) t.equal(res.headers['content-type'], undefined, 'no body, no content-type')
    else t.match(res.headers['content-type'], /^application\/json/)
    if (code === 'unauthorized') t.equal(res.headers['www-authenticate'], 'Bearer realm="scopegate"', 'bare challenge')
    else t.match(res.headers['www-authenticate'], new RegExp(`^Bearer realm="scopegate", error="${code}"`), 'error code in WWW-Authenticate')
    t.equal(res.headers['x-auth-subject'], undefined, 'no identity on a denial')
  }

  t.test('Envoy style: the original path follows /decisions, the method is the call\'s own', async (t) => {
    for (const gw of [trusting, distrusting]) {
      const res = await call(gw, '/decisions/todos/1?fields=title', { authorization: `Bearer ${reader}` })
      expectAllowed(t, res, 'todos-read')
      t.equal(res.headers['x-auth-subject'], 'alice')
      t.equal(res.headers['x-auth-client-id'], 'todo-web')
      t.equal(res.headers['x-auth-scopes'], 'read:todos write:todos')
      t.equal(res.headers['x-auth-roles'], 'editor')
      t.equal(res.headers['x-auth-issuer'], jwks.issuer)
    }
    const head = await call(trusting, '/decisions/todos/1', { authorization: `Bearer ${reader}` }, 'HEAD')
    t.equal(head.status, 200, 'HEAD is judged as HEAD (implied by GET)')
    const propfind = await call(trusting, '/decisions/public/dav', {}, 'PROPFIND')
    expectAllowed(t, propfind, 'public')
    const del = await call(trusting, '/decisions/todos/1', { authorization: `Bearer ${reader}` }, 'DELETE')
    expectDenied(t, del, 403, 'no_route')
    t.equal(trusting.decisions().at(-1)?.method, 'DELETE', 'the decision log names the original method')
    t.equal(trusting.decisions().at(-1)?.path, '/todos/1', 'and the original, normalized path')
  })

  t.test('Envoy style with the original body: answered without reading it', async (t) => {
    const res = await send(trusting.adminUrl, '/decisions/todos/1', {
      method: 'GET', headers: { authorization: `Bearer ${reader}`, 'content-type': 'application/json', 'content-length': '9' }, body: '{not json'
    })
    expectAllowed(t, res, 'todos-read')
    const other = await send(trusting.adminUrl, '/decisions/public/upload', {
      method: 'POST', headers: { 'content-type': 'application/x-unknown' }, body: 'x'.repeat(1000)
    })
    expectAllowed(t, other, 'public')
  })

  t.test('Traefik style: X-Forwarded-Method and X-Forwarded-Uri from a trusted peer', async (t) => {
    const res = await call(trusting, '/decisions', traefik('/todos/1?x=1', 'GET', reader))
    expectAllowed(t, res, 'todos-read')
    t.equal(res.headers['x-auth-subject'], 'alice')
    expectDenied(t, await call(trusting, '/decisions', traefik('/todos/1', 'DELETE', reader)), 403, 'no_route')
    t.equal(trusting.decisions().at(-1)?.method, 'DELETE')
  })

  t.test('ingress-nginx style: X-Original-Method and the full X-Original-URL', async (t) => {
    expectAllowed(t, await call(trusting, '/decisions', ingressNginx('https://api.example.com/todos/1?x=1', 'GET', reader)), 'todos-read')
    expectAllowed(t, await call(trusting, '/decisions', ingressNginx('http://[2001:db8::1]:8443/todos', 'GET', reader)), 'todos-read')
    expectAllowed(t, await call(trusting, '/decisions', { ...ingressNginx('https://api.example.com/todos', 'GET', reader), 'x-original-uri': '/todos' }), 'todos-read')
  })

  t.test('trust: the same headers from a peer outside trustProxy are not believed', async (t) => {
    const headers = traefik('/todos/1', 'GET', reader)
    expectAllowed(t, await call(trusting, '/decisions', headers), 'todos-read')
    expectDenied(t, await call(distrusting, '/decisions', headers), 403, 'invalid_request')
    t.match(distrusting.decisions().at(-1), { decision: 'deny', reason: 'request_malformed', detail: /not in server\.trustProxy/ })
    expectDenied(t, await call(distrusting, '/decisions', ingressNginx('https://api.example.com/todos/1', 'GET', reader)), 403, 'invalid_request')
    // With a path form, untrusted headers are ignored, not compared: the path form alone is judged.
    const res = await call(distrusting, '/decisions/public', traefik('/todos/1', 'DELETE', reader))
    expectAllowed(t, res, 'public')
  })

  t.test('no route: an explicit 403 no_route, never a 404 or a 5xx', async (t) => {
    for (const res of [
      await call(trusting, '/decisions/nowhere', { authorization: `Bearer ${reader}` }),
      await call(trusting, '/decisions/nowhere'),
      await call(trusting, '/decisions', traefik('/nowhere', 'GET', reader)),
      await call(trusting, '/decisions', ingressNginx('https://h/nowhere', 'POST'))
    ]) {
      expectDenied(t, res, 403, 'no_route')
    }
  })

  t.test('a missing, malformed or ambiguous original request is never allowed', async (t) => {
    const cases: Array<[name: string, target: string, headers: Record<string, string> | string[]]> = [
      ['nothing names it', '/decisions', { authorization: `Bearer ${reader}` }],
      ['only a query after /decisions', '/decisions?uri=/todos', { authorization: `Bearer ${reader}` }],
      ['X-Original-URI without a method', '/decisions', { 'x-original-uri': '/todos', authorization: `Bearer ${reader}` }],
      ['X-Original-Method without a URI', '/decisions', { 'x-original-method': 'GET', authorization: `Bearer ${reader}` }],
      ['X-Forwarded-Uri without a method', '/decisions', { 'x-forwarded-uri': '/todos', authorization: `Bearer ${reader}` }],
      ['a URI that is not a path', '/decisions', { 'x-original-method': 'GET', 'x-original-uri': 'todos', authorization: `Bearer ${reader}` }],
      ['a method that is not a token', '/decisions', { 'x-original-method': 'GE T', 'x-original-uri': '/todos', authorization: `Bearer ${reader}` }],
      ['an X-Original-URL that is not a URL', '/decisions', { 'x-original-method': 'GET', 'x-original-url': '/todos', authorization: `Bearer ${reader}` }],
      ['an X-Original-URL whose Host hides the path in a query', '/decisions', ingressNginx('http://x?/todos', 'GET', reader)],
      ['an X-Original-URL whose Host hides the path in a fragment', '/decisions', ingressNginx('http://x#/todos', 'GET', reader)],
      ['an encoded slash', '/decisions', traefik('/todos/..%2Fadmin', 'GET', reader)],
      ['a dot segment above the root', '/decisions/../todos', { authorization: `Bearer ${reader}` }],
      ['a percent-escape the router cannot decode', '/decisions/todos/%zz', { authorization: `Bearer ${reader}` }],
      ['X-Original-URI twice', '/decisions', ['host', 'scopegate', 'x-original-method', 'GET', 'x-original-uri', '/todos', 'x-original-uri', '/public', 'authorization', `Bearer ${reader}`]],
      ['X-Original-URI and X-Original-URL disagree', '/decisions', { ...ingressNginx('https://h/todos', 'GET', reader), 'x-original-uri': '/public' }],
      // A client adds X-Original-* to a request Traefik forwards: Traefik passes them on, and they must not win.
      ['the nginx and Traefik forms disagree', '/decisions', { ...traefik('/nowhere', 'GET', reader), 'x-original-method': 'GET', 'x-original-uri': '/todos' }],
      ['the path form and the headers disagree', '/decisions/todos', traefik('/nowhere', 'GET', reader)],
      ['the methods disagree', '/decisions/todos', traefik('/todos', 'DELETE', reader)]
    ]
    for (const [name, target, headers] of cases) {
      const res = await call(trusting, target, headers)
      t.not(res.status, 200, `${name}: not allowed`)
      t.equal(res.status, 403, `${name}: 403`)
      t.equal(errorCode(t, res), 'invalid_request', `${name}: invalid_request`)
      t.match(res.headers['www-authenticate'], /error="invalid_request"/, `${name}: challenge`)
    }
    // Agreeing forms are fine, also when they spell the same path differently.
    expectAllowed(t, await call(trusting, '/decisions/todos/1', traefik('/todos//1', 'GET', reader)), 'todos-read')
  })

  t.test('each kind of deny is 401 or 403 with the contract\'s code', async (t) => {
    // `kept`: decided by the Authorization value, method, host and URI alone (docs/forward-auth.md, "Caching decisions").
    const cases: Array<[name: string, headers: Record<string, string> | string[], status: 401 | 403, code: string, kept: boolean]> = [
      ['no token', {}, 401, 'unauthorized', true],
      ['a token that is not a JWT', { authorization: 'Bearer abc.def' }, 401, 'invalid_token', true],
      ['an expired token', { authorization: `Bearer ${await token({ exp: Math.floor(Date.now() / 1000) - 3600 })}` }, 401, 'invalid_token', true],
      ['a token not valid yet (nbf ahead): it will be', { authorization: `Bearer ${await token({ nbf: Math.floor(Date.now() / 1000) + 3600 })}` }, 401, 'invalid_token', false],
      ['a denied client', { authorization: `Bearer ${await token({ client_id: 'CLIENT_ID' })}` }, 401, 'end_users_not_allowed', true],
      ['no audience', { authorization: `Bearer ${await token({ aud: undefined })}` }, 401, 'end_users_not_allowed', true],
      ['a scope missing', { authorization: `Bearer ${await token({ scope: 'write:todos' })}` }, 403, 'insufficient_scope', true],
      ['a malformed Authorization header (400 in proxy mode)', { authorization: 'Bearer a b' }, 401, 'invalid_request', true],
      ['two Authorization headers (400 in proxy mode): the key holds one', ['host', 'scopegate', 'authorization', `Bearer ${reader}`, 'authorization', `Bearer ${reader}`], 401, 'invalid_request', false]
    ]
    for (const [name, headers, status, code, kept] of cases) {
      t.test(name, async (t) => {
        expectDenied(t, await call(trusting, '/decisions/todos/1', headers), status, code, kept)
        const viaHeaders = Array.isArray(headers) ? [...headers, 'x-forwarded-method', 'GET', 'x-forwarded-uri', '/todos/1'] : { ...headers, ...traefik('/todos/1') }
        expectDenied(t, await call(trusting, '/decisions', viaHeaders), status, code, kept)
      })
    }
    const scope = await call(trusting, '/decisions/todos', { authorization: `Bearer ${await token({ scope: 'write:todos' })}` })
    t.match(scope.headers['www-authenticate'], /scope="read:todos"/, 'insufficient_scope names the required scope')
  })

  t.test('issuer keys unavailable: 401 temporarily_unavailable with Retry-After, not a 503', async (t) => {
    const unverifiable = await mintToken(downKey, { iss: down.issuer, aud: API, sub: 'bob', client_id: 'todo-web', scope: 'read:todos' })
    const res = await call(trusting, '/decisions/todos', { authorization: `Bearer ${unverifiable}` })
    expectDenied(t, res, 401, 'temporarily_unavailable')
    t.ok(Number(res.headers['retry-after']) > 0, 'Retry-After')
  })

  t.test('client IP: X-Forwarded-For and X-Real-IP only from trusted peers', async (t) => {
    expectAllowed(t, await call(trusting, '/decisions/internal', { authorization: `Bearer ${reader}`, 'x-forwarded-for': '10.1.2.3' }), 'internal')
    expectAllowed(t, await call(trusting, '/decisions/internal', { authorization: `Bearer ${reader}`, 'x-real-ip': '10.1.2.3' }), 'internal')
    expectDenied(t, await call(trusting, '/decisions/internal', { authorization: `Bearer ${reader}`, 'x-forwarded-for': '203.0.113.7' }), 401, 'end_users_not_allowed')
    expectDenied(t, await call(distrusting, '/decisions/internal', { authorization: `Bearer ${reader}`, 'x-forwarded-for': '10.1.2.3' }), 401, 'end_users_not_allowed')
    expectDenied(t, await call(distrusting, '/decisions/internal', { authorization: `Bearer ${reader}`, 'x-real-ip': '10.1.2.3' }), 401, 'end_users_not_allowed')
  })

  t.test('allow headers: every identity header is answered, empty when it has no value', async (t) => {
    const anonymous = await call(trusting, '/decisions/public/page', { 'x-auth-subject': 'forged' })
    expectAllowed(t, anonymous, 'public')
    for (const name of IDENTITY.filter((n) => n !== 'x-auth-route')) t.equal(anonymous.headers[name], '', `${name} is present and empty`)
    const forged = await call(trusting, '/decisions/todos', { authorization: `Bearer ${reader}`, 'x-auth-subject': 'root', 'x-auth-scopes': 'admin' })
    t.equal(forged.headers['x-auth-subject'], 'alice', 'the call\'s own x-auth-* headers play no part')
    t.equal(forged.headers['x-auth-scopes'], 'read:todos write:todos')
  })

  t.test('audit mode: allowed, marked, and never cached', async (t) => {
    const res = await call(trusting, '/decisions/audited/x', { authorization: `Bearer ${reader}` })
    expectAllowed(t, res, 'audited')
    t.equal(res.headers['x-scopegate-audit'], 'insufficient_scope', 'the denial enforce mode would have answered')
    t.equal(res.headers['cache-control'], 'no-store')
    t.match(trusting.decisions().at(-1), { decision: 'audit_deny', reason: 'scope_insufficient' })
    const clean = await call(trusting, '/decisions/audited/x', { authorization: `Bearer ${await token({ scope: 'admin' })}` })
    t.equal(clean.headers['x-scopegate-audit'], undefined, 'no mark when enforce mode would allow too')
  })

  t.test('cache headers: an allow may be cached, bounded by the token and a cap; a keyed denial briefly; the rest never', async (t) => {
    const res = await call(trusting, '/decisions/todos', { authorization: `Bearer ${reader}` })
    t.equal(res.headers['cache-control'], 's-maxage=60, max-age=0', 'a token with 5 minutes left: the 60 s cap')
    t.equal(res.headers.vary, 'authorization')
    const short = await call(trusting, '/decisions/todos', { authorization: `Bearer ${await token({}, 20)}` })
    const seconds = Number(/s-maxage=(\d+)/.exec(String(short.headers['cache-control']))?.[1])
    t.ok(seconds >= 18 && seconds <= 20, `never past the token's exp (${seconds} s)`)
    const dying = await call(trusting, '/decisions/todos', { authorization: `Bearer ${await token({ exp: Math.floor(Date.now() / 1000) })}` })
    t.equal(dying.status, 200, 'still valid within the clock tolerance')
    t.equal(dying.headers['cache-control'], 'no-store', 'a token at its exp is not cached')
    const anonymous = await call(trusting, '/decisions/public', {})
    t.equal(anonymous.headers['cache-control'], 's-maxage=60, max-age=0', 'an anonymous allow: the cap')
    const network = await call(trusting, '/decisions/internal', { authorization: `Bearer ${reader}`, 'x-forwarded-for': '10.1.2.3' })
    t.equal(network.headers['cache-control'], 'no-store', 'a decision on the client address is not cached')
    t.equal(network.headers.vary, undefined)
    const denied = await call(trusting, '/decisions/todos', {})
    t.equal(denied.headers['cache-control'], 's-maxage=5, max-age=0', 'a denial the key decides: the route\'s denialCache, 5 s by default')
    t.equal(denied.headers.vary, 'authorization')
    const liveDenied = await call(trusting, '/decisions/live/x', {})
    t.equal(liveDenied.status, 401)
    t.equal(liveDenied.headers['cache-control'], 'no-store', 'forwardAuth.cacheHints: false: a denial is never cached either')
    t.equal(liveDenied.headers.vary, undefined)
    const auditDenied = await call(trusting, '/decisions/audited/x', {})
    t.equal(auditDenied.headers['cache-control'], 'no-store', 'audit mode: each request decided and logged')
    const live = await call(trusting, '/decisions/live/x', { authorization: `Bearer ${reader}` })
    expectAllowed(t, live, 'live')
    t.equal(live.headers['cache-control'], 'no-store', 'forwardAuth.cacheHints: false: an allow is never cached')
    t.equal(live.headers.vary, undefined)
    t.equal(live.headers['x-auth-subject'], 'alice', 'the identity headers are unchanged')
  })

  t.test('the proxy listener has no /decisions', async (t) => {
    const res = await send(trusting.proxyUrl, '/decisions/todos', { headers: { authorization: `Bearer ${reader}` } })
    t.equal(res.status, 404)
    t.equal(res.json?.error, 'no_route')
  })
})
