import type { IncomingHttpHeaders } from 'node:http'
import t from 'tap'
import { connectionNames, upstreamHeaders, type UpstreamHeaderOptions } from '../../src/forward/upstream-headers.js'
import { compileStrippedHeaders, DEFAULT_STRIPPED_HEADERS, isStrippedHeader } from '../../src/forward/strip-headers.js'
import { compileTestConfig } from '../helpers/gateway.js'

// The identity headers of a config with a forward.claims header, as the proxy passes them.
const { identityHeaders } = compileTestConfig({
  issuers: [{ id: 'a', issuer: 'https://a.example', jwksUri: 'https://a.example/jwks', algorithms: ['RS256'], audiences: ['x'] }],
  upstreams: { todo: { url: 'http://todo-api:3000' } },
  routes: [{ id: 'r', match: { path: '/' }, upstream: 'todo', forward: { claims: { 'X-Tenant-Id': 'tenant' } } }]
})

const ADD = { 'x-auth-route': 'todos', 'x-auth-subject': 'alice', 'x-auth-scopes': 'read:todos', 'x-tenant-id': 't1' }

function options (over: Partial<UpstreamHeaderOptions> = {}): UpstreamHeaderOptions {
  return { identityHeaders, stripHeaders: compileStrippedHeaders(), add: ADD, authorization: 'keep', ...over }
}

// Node lower-cases every header name it parses, so a client's `X-AUTH-Subject` arrives as `x-auth-subject`.
const client: IncomingHttpHeaders = {
  host: 'api.example.com',
  'user-agent': 'curl/8',
  accept: 'application/json',
  authorization: 'Bearer client.token.here',
  'x-request-id': 'r-1'
}

t.test('every client copy of an x-auth-* header is removed, set by scopegate or not', async (t) => {
  const forged = {
    ...client,
    'x-auth-subject': 'admin',
    'x-auth-scopes': 'everything',
    'x-auth-roles': 'admin',
    'x-auth-client-id': 'trusted',
    'x-auth-issuer': 'https://evil',
    'x-auth-route': 'admin',
    'x-auth-anything-else': 'x',
    'x-auth-': 'x'
  }
  const out = upstreamHeaders(forged, undefined, options({ add: {} }))
  t.same(Object.keys(out).filter((n) => n.startsWith('x-auth')), [])
  t.equal(out['x-request-id'], 'r-1', 'other headers pass')
})

t.test('a header that merely starts like x-auth is kept', async (t) => {
  const out = upstreamHeaders({ ...client, 'x-authn-trace': 'keep-me', 'x-author': 'keep-me-too' }, undefined, options({ add: {} }))
  t.equal(out['x-authn-trace'], 'keep-me')
  t.equal(out['x-author'], 'keep-me-too')
})

t.test('a client copy of a forward.claims header is removed and replaced', async (t) => {
  const out = upstreamHeaders({ ...client, 'x-tenant-id': 'someone-else' }, undefined, options())
  t.equal(out['x-tenant-id'], 't1')
  const anonymous = upstreamHeaders({ ...client, 'x-tenant-id': 'someone-else' }, undefined, options({ add: { 'x-auth-route': 'r' } }))
  t.equal(anonymous['x-tenant-id'], undefined, 'removed even when scopegate has nothing to put there')
})

t.test('scopegate\'s identity headers replace the client\'s', async (t) => {
  const out = upstreamHeaders({ ...client, 'x-auth-subject': 'admin', 'x-auth-scopes': 'everything' }, undefined, options())
  t.equal(out['x-auth-subject'], 'alice')
  t.equal(out['x-auth-scopes'], 'read:todos')
  t.equal(out['x-auth-route'], 'todos')
})

t.test('headers named in Connection are removed, whatever case they are listed in, except host', async (t) => {
  const headers = { ...client, connection: 'keep-alive, X-Request-Id, Accept, X-AUTH-SUBJECT, Host', 'x-auth-subject': 'forged' }
  const out = upstreamHeaders(headers, headers.connection, options())
  t.equal(out['x-request-id'], undefined)
  t.equal(out.accept, undefined)
  t.equal(out.host, 'api.example.com', 'host is never dropped')
  t.equal(out['x-auth-subject'], 'alice', 'naming an identity header in Connection cannot strip the one scopegate adds')
  t.equal(out['user-agent'], 'curl/8')
})

t.test('the Connection value is read from the argument, since the proxy library may have removed it from the headers', async (t) => {
  const out = upstreamHeaders({ ...client }, 'x-request-id', options())
  t.equal(out['x-request-id'], undefined)
  const several = upstreamHeaders({ ...client }, ['accept', 'user-agent'], options())
  t.equal(several.accept, undefined)
  t.equal(several['user-agent'], undefined)
})

t.test('hop-by-hop headers never travel upstream', async (t) => {
  const headers = {
    ...client,
    connection: 'keep-alive',
    'keep-alive': 'timeout=5',
    'proxy-connection': 'keep-alive',
    te: 'trailers',
    trailer: 'x-checksum',
    'transfer-encoding': 'chunked',
    upgrade: 'websocket',
    expect: '100-continue'
  }
  const out = upstreamHeaders(headers, undefined, options())
  for (const name of ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect']) {
    t.equal(out[name], undefined, name)
  }
})

t.test('connectionNames lower-cases, trims and drops empties', async (t) => {
  t.same(connectionNames(' Keep-Alive ,, X-Foo,'), ['keep-alive', 'x-foo'])
  t.same(connectionNames(['close', 'X-A, x-b']), ['close', 'x-a', 'x-b'])
  t.same(connectionNames(undefined), [])
  t.same(connectionNames(''), [])
})

t.test('authorization: keep passes it as received, strip removes it, reissue replaces it', async (t) => {
  const cases: Array<[name: string, over: Partial<UpstreamHeaderOptions>, expected: string | undefined]> = [
    ['keep', { authorization: 'keep' }, 'Bearer client.token.here'],
    ['strip', { authorization: 'strip' }, undefined],
    ['reissue', { authorization: 'reissue', reissued: 'gateway.signed.jwt' }, 'Bearer gateway.signed.jwt'],
    ['reissue without a token (anonymous) sends none', { authorization: 'reissue' }, undefined]
  ]
  for (const [name, over, expected] of cases) t.equal(upstreamHeaders(client, undefined, options(over)).authorization, expected, name)
  t.equal(upstreamHeaders({ host: 'h' }, undefined, options({ authorization: 'reissue', reissued: 'g.s.t' })).authorization, 'Bearer g.s.t',
    'reissue adds one when the client sent none')
  t.equal(upstreamHeaders({ host: 'h' }, undefined, options({ authorization: 'keep' })).authorization, undefined, 'keep adds none')
})

t.test('the input is not modified', async (t) => {
  const headers: IncomingHttpHeaders = {
    ...client,
    connection: 'x-request-id',
    'x-auth-subject': 'forged',
    'set-cookie': ['a=1', 'b=2']
  }
  const snapshot = structuredClone(headers)
  const out = upstreamHeaders(headers, headers.connection, options({ authorization: 'strip' }))
  t.same(headers, snapshot)
  t.not(out, headers, 'a new object')
  t.same(out['set-cookie'], ['a=1', 'b=2'], 'multi-value headers pass as lists')
})

t.test('headers upstreams obey as instructions are removed, whatever their case', async (t) => {
  const instructions = [
    'x-original-url', 'x-rewrite-url', 'x-original-uri', 'x-override-url', 'x-http-destinationurl', 'x-proxy-url',
    'x-forwarded-prefix', 'x-forwarded-path', 'x-forwarded-uri', 'x-forwarded-server', 'x-forwarded-ssl', 'x-forwarded-scheme',
    'x-accel-redirect', 'x-accel-buffering', 'x-envoy-original-path', 'x-envoy-retry-on',
    'x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-method',
    'x-real-ip', 'true-client-ip', 'cf-connecting-ip', 'fastly-client-ip', 'x-client-ip', 'x-cluster-client-ip', 'forwarded',
    'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port'
  ]
  const headers: IncomingHttpHeaders = { ...client }
  for (const name of instructions) headers[name] = 'forged'
  const out = upstreamHeaders(headers, undefined, options({ add: {} }))
  t.same(Object.keys(out).sort(), Object.keys(client).sort(), 'only the ordinary headers are left')
  for (const name of DEFAULT_STRIPPED_HEADERS) t.ok(isStrippedHeader(name, compileStrippedHeaders(), identityHeaders), name)
})

t.test('an underscore spelling of a stripped or identity header is removed (CGI reads `_` as `-`)', async (t) => {
  const disguised = [
    'x_auth_subject', 'x-auth_scopes', 'x_auth-roles', 'x_auth_anything', 'x_tenant_id', 'x_tenant-id',
    'x_forwarded_for', 'x-forwarded_host', 'x_real_ip', 'true_client_ip', 'x_original_url', 'x_http_method_override', 'x_accel_redirect'
  ]
  const headers: IncomingHttpHeaders = { ...client, x_request_id: 'kept', my_header: 'kept' }
  for (const name of disguised) headers[name] = 'forged'
  const out = upstreamHeaders(headers, undefined, options({ add: {} }))
  for (const name of disguised) t.equal(out[name], undefined, name)
  t.equal(out.x_request_id, 'kept', 'an underscore name that folds to nothing special passes')
  t.equal(out.my_header, 'kept')
})

t.test('a route\'s forward.stripHeaders adds to the built-in list', async (t) => {
  const stripHeaders = compileStrippedHeaders(['X-Debug-User', 'x-internal-token'])
  const headers = { ...client, 'x-debug-user': 'root', x_debug_user: 'root', 'x-internal-token': 's', 'x-real-ip': '10.0.0.1' }
  const out = upstreamHeaders(headers, undefined, options({ add: {}, stripHeaders }))
  t.same(Object.keys(out).sort(), Object.keys(client).sort())
  t.equal(upstreamHeaders(headers, undefined, options({ add: {} }))['x-debug-user'], 'root', 'other routes keep it')
})

t.test('the Host is set when given, else kept', async (t) => {
  t.equal(upstreamHeaders(client, undefined, options({ host: 'todo-api:3000' })).host, 'todo-api:3000')
  t.equal(upstreamHeaders(client, undefined, options()).host, 'api.example.com')
})

t.test('forwarding headers are set after stripping, and identity headers after them', async (t) => {
  const headers = { ...client, 'x-forwarded-for': '10.0.0.1', 'x-real-ip': '10.0.0.1', connection: 'x-forwarded-for' }
  const out = upstreamHeaders(headers, headers.connection, options({
    forwarding: { 'x-forwarded-for': '203.0.113.9', 'x-real-ip': '203.0.113.9', 'x-auth-subject': 'not-from-here' }
  }))
  t.equal(out['x-forwarded-for'], '203.0.113.9', 'naming it in Connection does not remove scopegate\'s copy')
  t.equal(out['x-real-ip'], '203.0.113.9')
  t.equal(out['x-auth-subject'], 'alice', 'identity headers win')
})
