import type { IncomingHttpHeaders } from 'node:http'
import t from 'tap'
import { connectionNames, upstreamHeaders, type UpstreamHeaderOptions } from '../../src/forward/upstream-headers.js'
import { compileTestConfig } from '../helpers/gateway.js'

// The identity headers of a config with a forward.claims header, as the proxy passes them.
const { identityHeaders } = compileTestConfig({
  issuers: [{ id: 'a', issuer: 'https://a.example', jwksUri: 'https://a.example/jwks', algorithms: ['RS256'], audiences: ['x'] }],
  upstreams: { todo: { url: 'http://todo-api:3000' } },
  routes: [{ id: 'r', match: { path: '/' }, upstream: 'todo', forward: { claims: { 'X-Tenant-Id': 'tenant' } } }]
})

const ADD = { 'x-auth-route': 'todos', 'x-auth-subject': 'alice', 'x-auth-scopes': 'read:todos', 'x-tenant-id': 't1' }

function options (over: Partial<UpstreamHeaderOptions> = {}): UpstreamHeaderOptions {
  return { identityHeaders, add: ADD, authorization: 'keep', ...over }
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
