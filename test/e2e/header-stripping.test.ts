/**
 * Strip before you add (docs/headers.md#strip-before-add): whatever identity headers a client sends, in whatever case,
 * and whatever it names in `Connection`, the upstream sees only scopegate's. Also: the Authorization
 * header is kept or stripped as the route says, anonymous requests carry no identity, request bodies
 * are streamed through byte for byte, and a denied request never reaches the upstream.
 */
import t from 'tap'
import { type Received } from '../helpers/echo-upstream.js'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'

const TODO = 'https://todo.api'

/** Every header of a given name the upstream received, whatever the case it was sent in. */
function all (seen: Received | undefined, name: string): string[] {
  const values: string[] = []
  const raw = seen?.rawHeaders ?? []
  for (let i = 0; i < raw.length; i += 2) if (raw[i]?.toLowerCase() === name) values.push(raw[i + 1] ?? '')
  return values
}

/** Identity headers the upstream received (names lower-cased), in the order received. */
function identityNames (seen: Received | undefined): string[] {
  const raw = seen?.rawHeaders ?? []
  const names: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] ?? '').toLowerCase()
    if (name.startsWith('x-auth-') || name === 'x-tenant-id') names.push(name)
  }
  return names
}

const FORGED: Record<string, string> = {
  'x-auth-subject': 'mallory',
  'X-Auth-Scopes': 'admin:all',
  'X-AUTH-CLIENT-ID': 'trusted-app',
  'x-auth-roles': 'admin',
  'x-auth-issuer': 'https://evil.example',
  'x-auth-route': 'admin',
  'x-auth-anything': 'forged',
  'X-Tenant-Id': 'other-tenant'
}

t.test('header stripping and body streaming', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)

  const gw = await startGateway({
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [TODO] }],
    upstreams: { echo: { url: echo.url } },
    routes: [
      { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'echo', policy: { scopes: { require: ['read:todos'] } }, forward: { claims: { 'x-tenant-id': 'tenant' } } },
      { id: 'stripped', match: { path: '/stripped', prefix: true }, upstream: 'echo', forward: { authorization: 'strip' } },
      { id: 'optional', match: { path: '/optional', prefix: true }, upstream: 'echo', auth: 'optional' },
      { id: 'open', match: { path: '/open', prefix: true }, upstream: 'echo', auth: 'none' }
    ]
  })
  t.teardown(() => gw.close())

  const claims = { iss: jwks.issuer, aud: TODO, sub: 'alice', client_id: 'todo-app', scope: 'read:todos write:todos', roles: ['editor'], tenant: 'acme' }
  const token = await mintToken(key, claims)
  const noTenant = await mintToken(key, { ...claims, tenant: undefined })

  t.test('forged identity headers, in any case, are replaced by scopegate\'s', async (t) => {
    const res = await send(gw.proxyUrl, '/todos/1', { headers: { ...FORGED, ...bearer(token) } })
    t.equal(res.status, 200)
    const seen = echo.received.at(-1)
    t.same(all(seen, 'x-auth-subject'), ['alice'])
    t.same(all(seen, 'x-auth-scopes'), ['read:todos write:todos'], 'mixed-case X-Auth-Scopes is gone; only scopegate\'s copy')
    t.same(all(seen, 'x-auth-client-id'), ['todo-app'])
    t.same(all(seen, 'x-auth-roles'), ['editor'])
    t.same(all(seen, 'x-auth-issuer'), [jwks.issuer])
    t.same(all(seen, 'x-auth-route'), ['todos'])
    t.same(all(seen, 'x-auth-anything'), [], 'an x-auth-* header scopegate never sets is removed too')
    t.same(all(seen, 'x-tenant-id'), ['acme'], 'a forward.claims header carries the claim, not the forged value')
    t.same(identityNames(seen).sort(),
      ['x-auth-client-id', 'x-auth-issuer', 'x-auth-roles', 'x-auth-route', 'x-auth-scopes', 'x-auth-subject', 'x-tenant-id'])
  })

  t.test('a forward.claims header is removed when the token lacks the claim', async (t) => {
    const res = await send(gw.proxyUrl, '/todos/1', { headers: { 'x-tenant-id': 'other-tenant', 'X-TENANT-ID': 'again', ...bearer(noTenant) } })
    t.equal(res.status, 200)
    t.same(all(echo.received.at(-1), 'x-tenant-id'), [])
  })

  t.test('a forward.claims header is stripped on every route, not only the one that sets it', async (t) => {
    const res = await send(gw.proxyUrl, '/stripped', { headers: { 'x-tenant-id': 'other-tenant', ...bearer(token) } })
    t.equal(res.status, 200)
    t.same(all(echo.received.at(-1), 'x-tenant-id'), [])
  })

  t.test('headers named in Connection are dropped, but scopegate\'s identity headers still arrive', async (t) => {
    const res = await send(gw.proxyUrl, '/todos/1', {
      headers: { connection: 'x-custom, X-Auth-Subject, x-tenant-id', 'x-custom': 'hop', 'x-auth-subject': 'mallory', ...bearer(token) }
    })
    t.equal(res.status, 200)
    const seen = echo.received.at(-1)
    t.same(all(seen, 'x-custom'), [], 'a header the client named in Connection never goes upstream')
    t.same(all(seen, 'x-auth-subject'), ['alice'], 'naming x-auth-subject in Connection cannot strip scopegate\'s copy')
    t.same(all(seen, 'x-tenant-id'), ['acme'])
    t.notMatch(String(seen?.headers.connection ?? ''), /x-custom|x-auth/i, 'the client\'s Connection list is not forwarded')
  })

  t.test('authorization: keep forwards the header as received, strip removes it', async (t) => {
    await send(gw.proxyUrl, '/todos/1', { headers: bearer(token) })
    t.same(all(echo.received.at(-1), 'authorization'), [`Bearer ${token}`], 'keep')
    await send(gw.proxyUrl, '/stripped/1', { headers: { Authorization: `Bearer ${token}` } })
    const seen = echo.received.at(-1)
    t.equal(seen?.url, '/stripped/1')
    t.same(all(seen, 'authorization'), [], 'strip')
    t.same(all(seen, 'x-auth-subject'), ['alice'], 'identity still forwarded when the token is stripped')
  })

  t.test('anonymous requests carry no identity, only x-auth-route, even when forged', async (t) => {
    const cases: Array<[string, string, Record<string, string>]> = [
      ['auth: optional without a token', '/optional/x', FORGED],
      ['auth: none without a token', '/open/x', FORGED],
      ['auth: none with a token, which is not even read', '/open/x', { ...FORGED, ...bearer(token) }]
    ]
    for (const [name, target, headers] of cases) {
      await t.test(name, async (t) => {
        const res = await send(gw.proxyUrl, target, { headers })
        t.equal(res.status, 200)
        const seen = echo.received.at(-1)
        t.equal(seen?.url, target)
        t.same(identityNames(seen), ['x-auth-route'])
        t.same(all(seen, 'x-auth-route'), [target.startsWith('/open') ? 'open' : 'optional'])
      })
    }
  })

  t.test('auth: optional with a valid token forwards its identity', async (t) => {
    const res = await send(gw.proxyUrl, '/optional/x', { headers: { ...FORGED, ...bearer(token) } })
    t.equal(res.status, 200)
    t.same(all(echo.received.at(-1), 'x-auth-subject'), ['alice'])
    t.same(all(echo.received.at(-1), 'x-auth-route'), ['optional'])
  })

  t.test('request bodies are streamed through unchanged', async (t) => {
    const megabyte = Array.from({ length: 1024 * 1024 }, (_, i) => String.fromCharCode(33 + ((i * 7919) % 94))).join('')
    const json = JSON.stringify({ title: 'buy milk', tags: ['a', 'b'], nested: { ok: true, n: 1.5e3 }, text: 'ünïcödé ✓' })
    const cases: Array<[string, string, Record<string, string>]> = [
      ['a 1 MB body', megabyte, { 'content-type': 'application/octet-stream' }],
      ['a body with no content-type', 'plain bytes; no type\r\nsecond line', {}],
      ['a JSON body, not parsed or re-serialized', json.replace('{', '{  '), { 'content-type': 'application/json' }]
    ]
    for (const [name, body, headers] of cases) {
      await t.test(name, async (t) => {
        const res = await send(gw.proxyUrl, '/todos/items', { method: 'POST', headers: { ...headers, ...bearer(token) }, body })
        t.equal(res.status, 200)
        const seen = echo.received.at(-1)
        t.equal(seen?.method, 'POST')
        t.equal(seen?.body.length, body.length, 'same length')
        t.ok(seen?.body === body, 'byte-identical')
        t.equal(seen?.headers['content-length'], String(Buffer.byteLength(body)))
        t.equal(seen?.headers['content-type'], headers['content-type'], 'content-type as sent (or absent)')
      })
    }
    await t.test('a chunked body with no Content-Length', async (t) => {
      const chunks = ['first chunk|', 'x'.repeat(70_000), '|last chunk']
      const res = await send(gw.proxyUrl, '/todos/items', { method: 'POST', headers: { 'content-type': 'text/plain', ...bearer(token) }, body: chunks })
      t.equal(res.status, 200)
      const seen = echo.received.at(-1)
      t.ok(seen?.body === chunks.join(''), 'byte-identical')
      t.equal(seen?.headers['content-length'], undefined, 'no Content-Length invented')
    })
  })

  t.test('a denied POST never reaches the upstream', async (t) => {
    const cases: Array<[string, Record<string, string>, number, string]> = [
      ['no token', {}, 401, 'unauthorized'],
      ['a token lacking the required scope', bearer(await mintToken(key, { ...claims, scope: 'write:todos' })), 403, 'insufficient_scope']
    ]
    for (const [name, headers, status, code] of cases) {
      await t.test(name, async (t) => {
        const before = echo.received.length
        const res = await send(gw.proxyUrl, '/todos/items', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ evil: true }) })
        t.equal(res.status, status)
        t.equal(res.json?.error, code)
        t.equal(res.headers['cache-control'], 'no-store')
        t.match(res.headers['www-authenticate'], /^Bearer realm="scopegate"/)
        t.equal(echo.received.length, before, 'the upstream received nothing')
      })
    }
  })
})
