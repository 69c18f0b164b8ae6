/**
 * The two plain functions under forward auth, with plain values: which request a call names
 * (forward-auth-request.ts), and which status a denial is answered with (forward-auth-answer.ts).
 */
import t from 'tap'
import { GatewayError, deny } from '../../src/shared/errors.js'
import { forwardAuthError, forwardAuthStatus } from '../../src/http/forward-auth-answer.js'
import { originalRequest, type ForwardAuthCall } from '../../src/http/forward-auth-request.js'

const call = (url: string, headers: Record<string, string> | string[] = {}, peerTrusted = true, method = 'GET'): ForwardAuthCall => ({
  method, url, peerTrusted, rawHeaders: Array.isArray(headers) ? headers : Object.entries(headers).flat()
})

t.test('the request a call names, and which way named it', async (t) => {
  const cases: Array<[name: string, call: ForwardAuthCall, method: string, target: string, source: string]> = [
    ['path form', call('/decisions/todos/1?x=1'), 'GET', '/todos/1?x=1', 'path'],
    ['path form keeps the call\'s method', call('/decisions/todos/1', {}, false, 'DELETE'), 'DELETE', '/todos/1', 'path'],
    ['path form for the root', call('/decisions/'), 'GET', '/', 'path'],
    ['path form needs no trust', call('/decisions/a', { 'x-original-uri': '/b', 'x-original-method': 'GET' }, false), 'GET', '/a', 'path'],
    ['X-Original-URI', call('/decisions', { 'X-Original-Method': 'PUT', 'X-Original-URI': '/todos/1?x' }), 'PUT', '/todos/1?x', 'x-original'],
    ['X-Original-URL (ingress-nginx)', call('/decisions', { 'x-original-method': 'GET', 'x-original-url': 'https://api.example.com:8443/todos?x=1' }), 'GET', '/todos?x=1', 'x-original'],
    ['X-Original-URL with an IPv6 host', call('/decisions', { 'x-original-method': 'GET', 'x-original-url': 'http://[2001:db8::1]/a' }), 'GET', '/a', 'x-original'],
    ['X-Original-URL with no host (HTTP/1.0 client)', call('/decisions', { 'x-original-method': 'GET', 'x-original-url': 'http:///a' }), 'GET', '/a', 'x-original'],
    ['X-Original-URI and -URL agreeing', call('/decisions', { 'x-original-method': 'GET', 'x-original-uri': '/a?b', 'x-original-url': 'https://h/a?b' }), 'GET', '/a?b', 'x-original'],
    ['Traefik', call('/decisions', { 'X-Forwarded-Method': 'POST', 'X-Forwarded-Uri': '/todos', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'h' }), 'POST', '/todos', 'x-forwarded'],
    ['all three agreeing: the path form is first', call('/decisions/a/b', { 'x-original-method': 'GET', 'x-original-uri': '/a//b', 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/a/./b' }), 'GET', '/a/b', 'path'],
    ['nginx and Traefik forms agreeing: nginx is first', call('/decisions?x', { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/a', 'x-original-method': 'GET', 'x-original-uri': '/a' }), 'GET', '/a', 'x-original']
  ]
  for (const [name, c, method, target, source] of cases) {
    const { host: _host, ...named } = originalRequest(c)
    t.same(named, { method, target, source }, name)
  }
})

t.test('the original host: the path form\'s Host, and from a trusted peer X-Forwarded-Host and X-Original-URL', async (t) => {
  const cases: Array<[name: string, call: ForwardAuthCall, host: string | undefined]> = [
    ['path form: the call\'s Host (Envoy sends the original authority)', call('/decisions/a', { host: 'A.example.com:8443' }, false), 'A.example.com:8443'],
    ['path form without Host', call('/decisions/a', {}, false), undefined],
    ['X-Forwarded-Host (Traefik)', call('/decisions', { host: 'scopegate:9090', 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/a', 'x-forwarded-host': 'b.example.com' }), 'b.example.com'],
    ['X-Original-URL\'s authority (ingress-nginx)', call('/decisions', { host: 'scopegate:9090', 'x-original-method': 'GET', 'x-original-url': 'https://c.example.com/a' }), 'c.example.com'],
    ['header forms never read the call\'s Host', call('/decisions', { host: 'scopegate:9090', 'x-original-method': 'GET', 'x-original-uri': '/a' }), undefined],
    ['X-Forwarded-Host from an untrusted peer is ignored', call('/decisions/a', { host: 'a.example.com', 'x-forwarded-host': 'admin.example.com' }, false), 'a.example.com'],
    ['trusted headers agreeing up to case, port and trailing dot', call('/decisions', { 'x-original-method': 'GET', 'x-original-url': 'https://a.example.com/a', 'x-forwarded-host': 'A.Example.com.:443' }), 'A.Example.com.:443'],
    ['X-Forwarded-Host over the path form\'s Host (nginx sends scopegate\'s own name there)', call('/decisions/a', { host: 'scopegate', 'x-forwarded-host': 'a.example.com' }), 'a.example.com']
  ]
  for (const [name, c, host] of cases) t.equal(originalRequest(c).host, host, name)

  const refused: Array<[name: string, call: ForwardAuthCall]> = [
    ['X-Forwarded-Host and X-Original-URL naming different hosts', call('/decisions', { 'x-original-method': 'GET', 'x-original-url': 'https://a.example.com/a', 'x-forwarded-host': 'b.example.com' })],
    ['X-Forwarded-Host twice', call('/decisions', ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/a', 'x-forwarded-host', 'a', 'x-forwarded-host', 'b'])],
    ['X-Forwarded-Host as a list', call('/decisions', { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/a', 'x-forwarded-host': 'a.example.com, b.example.com' })],
    ['two Host headers on the path form', call('/decisions/a', ['host', 'a.example.com', 'host', 'b.example.com'], false)]
  ]
  for (const [name, c] of refused) {
    t.throws(() => originalRequest(c), { code: 'invalid_request', reason: 'request_malformed', status: 400 }, name)
  }
})

t.test('anything short of certain is refused, with a detail for the log', async (t) => {
  const cases: Array<[name: string, call: ForwardAuthCall, detail: RegExp]> = [
    ['nothing', call('/decisions'), /no original request/],
    ['a query only', call('/decisions?uri=/a'), /no original request/],
    ['headers from an untrusted peer', call('/decisions', { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/a' }, false), /not in server\.trustProxy/],
    ['method without URI', call('/decisions', { 'x-original-method': 'GET' }), /without x-original-uri/],
    ['URI without method', call('/decisions', { 'x-original-uri': '/a' }), /without x-original-method/],
    ['Traefik URI without method', call('/decisions', { 'x-forwarded-uri': '/a' }), /without x-forwarded-method/],
    ['Traefik method without URI', call('/decisions', { 'x-forwarded-method': 'GET' }), /without x-forwarded-uri/],
    ['a URI not starting with /', call('/decisions', { 'x-original-method': 'GET', 'x-original-uri': 'a' }), /does not start with/],
    ['an absolute URI where a path is expected', call('/decisions', { 'x-forwarded-method': 'GET', 'x-forwarded-uri': 'http://h/a' }), /does not start with/],
    ['a method that is not a token', call('/decisions', { 'x-original-method': 'G(T', 'x-original-uri': '/a' }), /not an HTTP method/],
    ['an empty method', call('/decisions', { 'x-original-method': '', 'x-original-uri': '/a' }), /not an HTTP method/],
    ['an X-Original-URL without a scheme', call('/decisions', { 'x-original-method': 'GET', 'x-original-url': '//h/a' }), /x-original-url/],
    ['an X-Original-URL of another scheme', call('/decisions', { 'x-original-method': 'GET', 'x-original-url': 'ftp://h/a' }), /x-original-url/],
    ['an X-Original-URL without a path', call('/decisions', { 'x-original-method': 'GET', 'x-original-url': 'https://h' }), /x-original-url/],
    ['a Host hiding the path in a query', call('/decisions', { 'x-original-method': 'GET', 'x-original-url': 'http://x?/admin' }), /x-original-url/],
    ['a Host hiding the path in a fragment', call('/decisions', { 'x-original-method': 'GET', 'x-original-url': 'http://x#/admin' }), /x-original-url/],
    ['a Host with userinfo', call('/decisions', { 'x-original-method': 'GET', 'x-original-url': 'http://u@x/admin' }), /x-original-url/],
    ['a repeated header', call('/decisions', ['x-original-method', 'GET', 'x-original-uri', '/a', 'X-Original-URI', '/a']), /sent 2 times/],
    ['URI and URL disagreeing', call('/decisions', { 'x-original-method': 'GET', 'x-original-uri': '/a', 'x-original-url': 'http://h/b' }), /different targets/],
    ['nginx and Traefik forms disagreeing', call('/decisions', { 'x-original-method': 'GET', 'x-original-uri': '/public', 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/admin' }), /different requests/],
    ['path form and headers disagreeing', call('/decisions/public', { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/admin' }), /different requests/],
    ['methods disagreeing', call('/decisions/a', { 'x-forwarded-method': 'DELETE', 'x-forwarded-uri': '/a' }), /different requests/],
    ['queries disagreeing', call('/decisions/a?x=1', { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/a?x=2' }), /different requests/],
    ['a target with no canonical form cannot be compared', call('/decisions/a%2Fb', { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/a%2Fb/' }), /different requests/]
  ]
  for (const [name, c, detail] of cases) {
    t.throws(() => originalRequest(c), { code: 'invalid_request', reason: 'request_malformed', status: 400, detail }, name)
  }
})

t.test('a forward-auth denial is 401 or 403, with its code, challenge and detail kept', async (t) => {
  const cases: Array<[name: string, error: GatewayError, status: 401 | 403]> = [
    ['no token', deny.tokenMissing(), 401],
    ['invalid token', deny.invalidToken('token_expired', 'expired'), 401],
    ['policy, 401', deny.policy(401, 'client_denied', 'no'), 401],
    ['policy, denyStatus 403', deny.policy(403, 'client_denied', 'no'), 403],
    ['scope, 403', deny.insufficientScope(403, ['read']), 403],
    ['scope, denyStatus 401', deny.insufficientScope(401, ['read']), 401],
    ['malformed Authorization', deny.badRequest('authorization_malformed', 'bad'), 401],
    ['two Authorization headers', deny.badRequest('authorization_duplicated', 'two'), 401],
    ['keys unavailable', deny.keysUnavailable(30), 401],
    ['path not canonical', deny.badRequest('path_invalid', 'bad path'), 403],
    ['original request unknown', deny.badRequest('request_malformed', 'unknown'), 403],
    ['no route', deny.noRoute('GET /x'), 403],
    ['internal error', deny.internal('boom'), 403],
    ['headers too large', new GatewayError(431, 'request_header_fields_too_large', 'headers_too_large', 'too large'), 403]
  ]
  for (const [name, error, status] of cases) {
    t.equal(forwardAuthStatus(error), status, name)
    const mapped = forwardAuthError(error)
    t.match(mapped, { status, code: error.code, reason: error.reason, description: error.description, detail: error.detail, scope: error.scope, retryAfter: error.retryAfter }, `${name}: all else kept`)
  }
})
