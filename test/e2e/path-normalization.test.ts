/**
 * The path scopegate authorizes is exactly the path it forwards (docs/config.md#request-hygiene). Each trick is checked
 * two ways: which route's policy decided it (a public `auth: none` prefix next to a protected `/admin`),
 * and what the upstream actually received. Paths with no safe canonical form are refused with 400 and
 * reach nobody. The query string passes byte for byte; `stripPrefix` and an upstream base path compose.
 */
import t from 'tap'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'

const API = 'https://admin.api'

t.test('path normalization decides and forwards one path', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)

  const gw = await startGateway({
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { echo: { url: echo.url }, based: { url: `${echo.url}/api` } },
    routes: [
      { id: 'public', match: { path: '/public', prefix: true }, upstream: 'echo', auth: 'none' },
      { id: 'admin', match: { path: '/admin', prefix: true }, upstream: 'echo', policy: { scopes: { require: ['admin'] } } },
      { id: 'svc', match: { path: '/svc', prefix: true }, upstream: 'based', stripPrefix: true, auth: 'none' },
      { id: 'kept', match: { path: '/kept', prefix: true }, upstream: 'based', auth: 'none' }
    ]
  })
  t.teardown(() => gw.close())

  const admin = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'root', scope: 'admin' })
  const reader = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'bob', scope: 'read' })

  const climbs = ['/public/../admin', '/public/%2e%2e/admin', '/public/%2E%2E/admin', '//admin', '/public/..;/admin', '/public/x/../../admin', '/public/./../admin/.']

  t.test('a path that climbs out of /public is decided by /admin\'s policy', async (t) => {
    for (const target of climbs) {
      await t.test(target, async (t) => {
        const before = echo.received.length
        const anonymous = await send(gw.proxyUrl, target)
        t.equal(anonymous.status, 401, 'anonymous: denied by /admin, not let through by /public')
        t.equal(anonymous.json?.error, 'unauthorized')
        const weak = await send(gw.proxyUrl, target, { headers: bearer(reader) })
        t.equal(weak.status, 403, 'without the admin scope: denied by /admin\'s required scopes')
        t.equal(weak.json?.error, 'insufficient_scope')
        t.equal(echo.received.length, before, 'the upstream received nothing')

        const allowed = await send(gw.proxyUrl, target, { headers: bearer(admin) })
        t.equal(allowed.status, 200, 'with the admin scope: allowed')
        const seen = echo.received.at(-1)
        t.equal(seen?.url, target.endsWith('/.') ? '/admin/' : '/admin', 'the upstream received the normalized path it was authorized for')
        t.equal(seen?.headers['x-auth-route'], 'admin')
        t.equal(echo.received.length, before + 1)
      })
    }
  })

  t.test('paths with no safe canonical form: 400 invalid_request, nothing forwarded', async (t) => {
    const rejected = ['/admin%2Fx', '/public/%2e%2e%2fadmin', '/public/..%2Fadmin', '/..', '/public/../..', '/../admin',
      '/public%5C..%5Cadmin', '/public\\..\\admin', '/public/%00', '/public/%0a', '/public/%', '/public/%G1']
    for (const target of rejected) {
      await t.test(target, async (t) => {
        const before = echo.received.length
        const res = await send(gw.proxyUrl, target, { headers: bearer(admin) })
        t.equal(res.status, 400)
        t.equal(res.json?.error, 'invalid_request')
        t.equal(res.headers['cache-control'], 'no-store')
        t.match(res.headers['content-type'], /^application\/json/)
        t.equal(echo.received.length, before, 'the upstream received nothing')
      })
    }
  })

  t.test('dot segments, repeated slashes, unreserved escapes and matrix parameters are normalized before forwarding', async (t) => {
    const cases: Array<[string, string, string]> = [
      ['/public/./a//b', '/public/a/b', 'public'],
      ['/public/a/./b/../c', '/public/a/c', 'public'],
      ['/public/%61%62c', '/public/abc', 'public'],
      ['/public/a%7cb', '/public/a%7Cb', 'public'],
      ['/public/a|b', '/public/a%7Cb', 'public'],
      ['/public/a;jsessionid=1/b', '/public/a/b', 'public'],
      ['/public/a%20b', '/public/a%20b', 'public'],
      ['/public/', '/public/', 'public'],
      ['/admin/..//public', '/public', 'public']
    ]
    for (const [target, forwarded, route] of cases) {
      await t.test(target, async (t) => {
        const res = await send(gw.proxyUrl, target)
        t.equal(res.status, 200)
        const seen = echo.received.at(-1)
        t.equal(seen?.url, forwarded)
        t.equal(seen?.headers['x-auth-route'], route)
      })
    }
  })

  t.test('a prefix route is segment-aware: /publicity is not under /public', async (t) => {
    const before = echo.received.length
    const res = await send(gw.proxyUrl, '/publicity')
    t.equal(res.status, 404)
    t.equal(res.json?.error, 'no_route')
    t.equal(echo.received.length, before)
  })

  t.test('the query string passes byte for byte', async (t) => {
    const queries = ['?a=%2F..%2F&b=1;2', '?x=/../admin&y=%00&z=a+b%20c', '?a&a=&=b', '?%7e=%7E&q=%E2%9C%93']
    for (const query of queries) {
      await t.test(query, async (t) => {
        const res = await send(gw.proxyUrl, `/public/./q${query}`)
        t.equal(res.status, 200)
        t.equal(echo.received.at(-1)?.url, `/public/q${query}`)
      })
    }
    await t.test('no query: nothing appended', async (t) => {
      await send(gw.proxyUrl, '/public/q')
      t.equal(echo.received.at(-1)?.url, '/public/q')
    })
  })

  t.test('a query cannot change the route or the forwarded path', async (t) => {
    const res = await send(gw.proxyUrl, '/public?/../admin')
    t.equal(res.status, 200)
    t.equal(echo.received.at(-1)?.url, '/public?/../admin')
    t.equal(echo.received.at(-1)?.headers['x-auth-route'], 'public')
  })

  t.test('stripPrefix with an upstream base path', async (t) => {
    const cases: Array<[string, string]> = [
      ['/svc/items/1?q=1', '/api/items/1?q=1'],
      ['/svc/a/../b', '/api/b'],
      ['/svc/items/', '/api/items/'],
      ['/svc', '/api'],
      ['/svc/', '/api/'],
      ['/kept/items', '/api/kept/items']
    ]
    for (const [target, forwarded] of cases) {
      await t.test(target, async (t) => {
        const res = await send(gw.proxyUrl, target)
        t.equal(res.status, 200)
        t.equal(echo.received.at(-1)?.url, forwarded)
      })
    }
  })

  t.test('absolute-form request targets are normalized like origin-form ones', async (t) => {
    // The Host a client sends with absolute-form names the same host (docs/proxying.md).
    const host = { host: 'scopegate.test' }
    const res = await send(gw.proxyUrl, 'http://scopegate.test/public/../admin?x=1', { headers: host })
    t.equal(res.status, 401, 'decided by /admin')
    const ok = await send(gw.proxyUrl, 'http://scopegate.test/public/./a?x=1', { headers: host })
    t.equal(ok.status, 200)
    t.equal(echo.received.at(-1)?.url, '/public/a?x=1')
  })
})
