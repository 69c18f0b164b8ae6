/**
 * What the upstream receives in its headers (docs/proxying.md): forwarding headers only as far as
 * trusted peers vouch for them, no header an upstream framework would obey as an instruction, no
 * identity header in disguise, and the Host the upstream's config asks for. Requests are written on
 * raw sockets, so odd spellings (underscores, several cases of one name) really arrive, and every test
 * reads the upstream's raw header list.
 */
import t from 'tap'
import type { Received } from '../helpers/echo-upstream.js'
import { compileTestConfig, issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { mintToken } from '../helpers/jwks-server.js'
import { rawRequest } from '../helpers/raw-http.js'

const TODO = 'https://todo.api'

/** Every value the upstream received under a name, compared case-insensitively and, with `fold`, with `_` read as `-`. */
function all (seen: Received | undefined, name: string, fold = false): string[] {
  const values: string[] = []
  const raw = seen?.rawHeaders ?? []
  for (let i = 0; i < raw.length; i += 2) {
    let received = (raw[i] ?? '').toLowerCase()
    if (fold) received = received.replaceAll('_', '-')
    if (received === name) values.push(raw[i + 1] ?? '')
  }
  return values
}

/** Names the upstream received, lower-cased. */
function names (seen: Received | undefined): string[] {
  return (seen?.rawHeaders ?? []).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())
}

t.test('what the upstream receives', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const issuers = [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [TODO] }]
  const routes = [
    { id: 'api', match: { path: '/api', prefix: true }, upstream: 'echo', policy: { scopes: { require: ['read'] } }, forward: { claims: { 'x-tenant-id': 'tenant' } } },
    { id: 'internal', match: { path: '/internal', prefix: true }, upstream: 'echo', policy: { network: { allow: ['10.0.0.0/8'] } } },
    { id: 'open', match: { path: '/open', prefix: true }, upstream: 'echo', auth: 'none' },
    { id: 'debug', match: { path: '/debug', prefix: true }, upstream: 'echo', auth: 'none', forward: { stripHeaders: ['X-Debug-User'] } },
    { id: 'site', match: { path: '/site', prefix: true }, upstream: 'site', auth: 'none' }
  ]
  const upstreams = { echo: { url: echo.url }, site: { url: echo.url, preserveHost: true } }
  // 127.0.0.1, the test's own address, is not trusted here; 10.0.0.0/8 is, but no test connects from it.
  const gw = await startGateway({ server: { trustProxy: ['10.0.0.0/8'] }, issuers, upstreams, routes })
  t.teardown(() => gw.close())
  // Here 127.0.0.1 is a trusted proxy in front of scopegate.
  const trusting = await startGateway({
    server: { trustProxy: ['127.0.0.1', '2001:db8::/32'], forwarded: { forwarded: true, clientIpHeaders: ['X-Real-IP'] } },
    issuers,
    upstreams,
    routes
  })
  t.teardown(() => trusting.close())

  const token = await mintToken(key, { iss: jwks.issuer, aud: TODO, sub: 'alice', scope: 'read', tenant: 'acme' })
  const auth = `Authorization: Bearer ${token}`
  const host = new URL(gw.proxyUrl).host
  const hostLine = `Host: ${host}`
  const port = new URL(gw.proxyUrl).port

  t.test('an untrusted peer\'s address claims do not decide network rules and never reach the upstream', async (t) => {
    const forged = ['X-Forwarded-For: 10.0.0.1', 'Forwarded: for=10.0.0.1', 'X-Real-IP: 10.0.0.1', 'True-Client-IP: 10.0.0.1']
    for (const claim of [...forged.map((line) => [line]), forged]) {
      await t.test(claim.join(' + '), async (t) => {
        const before = echo.received.length
        const res = await rawRequest(gw.proxyUrl, ['GET /internal/x HTTP/1.1', hostLine, auth, ...claim])
        t.equal(res.status, 401)
        t.equal(res.json?.error, 'end_users_not_allowed')
        t.equal(echo.received.length, before, 'the upstream received nothing')
      })
    }
    const res = await rawRequest(gw.proxyUrl, ['GET /open/x HTTP/1.1', hostLine, ...forged,
      'X-Forwarded-For: 10.0.0.2', 'CF-Connecting-IP: 10.0.0.1', 'Fastly-Client-IP: 10.0.0.1', 'X-Client-IP: 10.0.0.1', 'X-Cluster-Client-IP: 10.0.0.1',
      'X-Forwarded-Proto: https', 'X-Forwarded-Host: evil.example', 'X-Forwarded-Port: 8443'])
    t.equal(res.status, 200)
    const seen = echo.received.at(-1)
    t.equal(seen?.url, '/open/x')
    t.same(all(seen, 'x-forwarded-for'), ['127.0.0.1'], 'several forged X-Forwarded-For headers give one value: the real peer')
    for (const name of ['forwarded', 'x-real-ip', 'true-client-ip', 'cf-connecting-ip', 'fastly-client-ip', 'x-client-ip', 'x-cluster-client-ip']) {
      t.same(all(seen, name), [], name)
    }
    t.same([all(seen, 'x-forwarded-proto'), all(seen, 'x-forwarded-host'), all(seen, 'x-forwarded-port')], [['http'], [host], [port]],
      'proto, host and port from the connection')
  })

  t.test('a trusted peer\'s chain is kept from the client on, the peer appended; its claims are believed', async (t) => {
    const res = await rawRequest(trusting.proxyUrl, ['GET /internal/x HTTP/1.1', 'Host: api.example.com', auth,
      'X-Forwarded-For: 6.6.6.6', 'X-Forwarded-For: 10.0.0.1', 'X-Real-IP: 6.6.6.6', 'Forwarded: for=6.6.6.6',
      'X-Forwarded-Proto: https', 'X-Forwarded-Host: api.example.com', 'X-Forwarded-Port: 443'])
    t.equal(res.status, 200, 'the client address is 10.0.0.1, which the route allows')
    const seen = echo.received.at(-1)
    t.same(all(seen, 'x-forwarded-for'), ['10.0.0.1, 127.0.0.1'], 'what the client wrote left of its own address is gone')
    t.same(all(seen, 'x-real-ip'), ['10.0.0.1'], 'clientIpHeaders: set from the decided address, the client\'s copy replaced')
    t.same(all(seen, 'forwarded'), ['for=10.0.0.1;host=api.example.com;proto=https, for=127.0.0.1'])
    t.same([all(seen, 'x-forwarded-proto'), all(seen, 'x-forwarded-host'), all(seen, 'x-forwarded-port')], [['https'], ['api.example.com'], ['443']])
    t.same(all(seen, 'x-auth-subject'), ['alice'])
  })

  t.test('through a trusted peer, a client outside the allowed network is still denied', async (t) => {
    const before = echo.received.length
    const res = await rawRequest(trusting.proxyUrl, ['GET /internal/x HTTP/1.1', hostLine, auth, 'X-Forwarded-For: 10.0.0.1, 203.0.113.9'])
    t.equal(res.status, 401)
    t.equal(res.json?.error, 'end_users_not_allowed')
    t.equal(echo.received.length, before, 'the upstream received nothing')
  })

  t.test('an IPv6 client through a trusted peer', async (t) => {
    const res = await rawRequest(trusting.proxyUrl, ['GET /open/v6 HTTP/1.1', 'Host: [2001:db8::80]:8080', 'X-Forwarded-For: [2606:4700::1111]:5555, 2001:db8::2'])
    t.equal(res.status, 200)
    const seen = echo.received.at(-1)
    t.same(all(seen, 'x-forwarded-for'), ['2606:4700::1111, 2001:db8::2, 127.0.0.1'])
    t.same(all(seen, 'forwarded'), ['for="[2606:4700::1111]";host="[2001:db8::80]:8080";proto=http, for="[2001:db8::2]", for=127.0.0.1'])
    t.same(all(seen, 'x-real-ip'), ['2606:4700::1111'])
    t.same(all(seen, 'x-forwarded-port'), ['8080'])
  })

  t.test('method overrides are stripped: the upstream executes the method that was authorized', async (t) => {
    const res = await rawRequest(gw.proxyUrl, ['GET /api/items?_method=DELETE HTTP/1.1', hostLine, auth,
      'X-HTTP-Method-Override: DELETE', 'X-HTTP-Method: DELETE', 'X-Method-Override: DELETE', 'x_http_method_override: DELETE', 'X-Original-Method: DELETE'])
    t.equal(res.status, 200)
    const seen = echo.received.at(-1)
    t.equal(seen?.method, 'GET')
    t.equal(seen?.url, '/api/items?_method=DELETE', 'the query is forwarded untouched, _method included (docs/proxying.md)')
    t.same(names(seen).filter((n) => /method/.test(n)), [])
  })

  t.test('routing instructions never reach the upstream', async (t) => {
    const instructions = ['X-Original-URL', 'X-Rewrite-URL', 'X-Original-URI', 'X-Forwarded-Prefix', 'X-Forwarded-Path', 'X-Forwarded-Uri',
      'X-Accel-Redirect', 'X-Accel-Buffering', 'X-Override-URL', 'X-HTTP-DestinationURL', 'X-Proxy-URL', 'X-Envoy-Original-Path', 'X_Original_URL']
    const res = await rawRequest(gw.proxyUrl, ['GET /api/public HTTP/1.1', hostLine, auth, ...instructions.map((name) => `${name}: /admin`)])
    t.equal(res.status, 200)
    const seen = echo.received.at(-1)
    t.equal(seen?.url, '/api/public')
    const lower = instructions.map((n) => n.toLowerCase())
    t.same(names(seen).filter((n) => lower.includes(n)), [])
    t.notOk(seen?.rawHeaders.some((value, i) => i % 2 === 1 && value === '/admin'), 'no header carries the forged path')
  })

  t.test('forged identity headers in any case or spelling: exactly one gateway-set value arrives', async (t) => {
    const res = await rawRequest(gw.proxyUrl, ['GET /api/x HTTP/1.1', hostLine, auth,
      'X-Auth-Scopes: admin', 'x-auth-scopes: admin', 'X-AUTH-SCOPES: admin', 'X_Auth_Scopes: admin', 'x-auth_scopes: admin',
      'X_AUTH_SUBJECT: mallory', 'X-Auth_Subject: mallory', 'x_auth_route: admin', 'x_tenant_id: other', 'X-Tenant_Id: other',
      'X_Forwarded_For: 10.0.0.1', 'x_real_ip: 10.0.0.1'])
    t.equal(res.status, 200)
    const seen = echo.received.at(-1)
    t.same(all(seen, 'x-auth-scopes', true), ['read'])
    t.same(all(seen, 'x-auth-subject', true), ['alice'])
    t.same(all(seen, 'x-auth-route', true), ['api'])
    t.same(all(seen, 'x-tenant-id', true), ['acme'])
    t.same(all(seen, 'x-forwarded-for', true), ['127.0.0.1'])
    t.same(all(seen, 'x-real-ip', true), [])
    t.same(names(seen).filter((n) => n.includes('_')), [], 'no underscore spelling arrives')
  })

  t.test('a Connection header naming identity headers or Authorization changes neither the decision nor the identity', async (t) => {
    for (const connection of ['close, x-auth-scopes, x-auth-sub', 'close, X-Auth-Subject, x-tenant-id, x-forwarded-for', 'close, authorization']) {
      await t.test(connection, async (t) => {
        const res = await rawRequest(gw.proxyUrl, ['GET /api/x HTTP/1.1', hostLine, auth, `Connection: ${connection}`, 'X-Auth-Scopes: admin'])
        t.equal(res.status, 200)
        const seen = echo.received.at(-1)
        t.same(all(seen, 'x-auth-scopes'), ['read'])
        t.same(all(seen, 'x-auth-subject'), ['alice'])
        t.same(all(seen, 'x-tenant-id'), ['acme'])
        t.same(all(seen, 'x-forwarded-for'), ['127.0.0.1'])
      })
    }
    const before = echo.received.length
    const res = await rawRequest(gw.proxyUrl, ['GET /api/x HTTP/1.1', hostLine, 'Connection: close, authorization'])
    t.equal(res.status, 401, 'without a token it is still a 401')
    t.equal(echo.received.length, before)
  })

  t.test('a route\'s stripHeaders removes its own names too', async (t) => {
    await rawRequest(gw.proxyUrl, ['GET /debug HTTP/1.1', hostLine, 'X-Debug-User: root', 'x_debug_user: root', 'X-Request-Id: r-1'])
    let seen = echo.received.at(-1)
    t.equal(seen?.url, '/debug')
    t.same(all(seen, 'x-debug-user', true), [])
    t.same(all(seen, 'x-request-id'), ['r-1'], 'other headers pass')
    await rawRequest(gw.proxyUrl, ['GET /open HTTP/1.1', hostLine, 'X-Debug-User: root'])
    seen = echo.received.at(-1)
    t.same(all(seen, 'x-debug-user'), ['root'], 'a route that does not name it keeps it')
  })

  t.test('the upstream receives its own host, or the client\'s with preserveHost', async (t) => {
    await rawRequest(gw.proxyUrl, ['GET /open HTTP/1.1', 'Host: public.example'])
    t.same(all(echo.received.at(-1), 'host'), [new URL(echo.url).host])
    t.same(all(echo.received.at(-1), 'x-forwarded-host'), ['public.example'], 'the client\'s in X-Forwarded-Host')
    await rawRequest(gw.proxyUrl, ['GET /site HTTP/1.1', 'Host: public.example'])
    t.equal(echo.received.at(-1)?.url, '/site')
    t.same(all(echo.received.at(-1), 'host'), ['public.example'])
    await rawRequest(gw.proxyUrl, ['GET /site HTTP/1.0'])
    t.same(all(echo.received.at(-1), 'host'), [new URL(echo.url).host], 'no client Host (HTTP/1.0): the upstream\'s')
  })

  t.test('a reload changes what the upstream receives at once', async (t) => {
    const config = (forwarded: Record<string, unknown>, preserveHost: boolean): Record<string, unknown> =>
      ({ server: { forwarded }, upstreams: { echo: { url: echo.url, preserveHost } }, routes: [{ id: 'open', match: { path: '/' }, upstream: 'echo', auth: 'none' }] })
    const own = await startGateway(config({}, false))
    t.teardown(() => own.close())
    await rawRequest(own.proxyUrl, ['GET / HTTP/1.1', 'Host: public.example'])
    let seen = echo.received.at(-1)
    t.same([all(seen, 'x-forwarded-for'), all(seen, 'x-real-ip'), all(seen, 'host')], [['127.0.0.1'], [], [new URL(echo.url).host]])
    t.ok(await own.gateway.reload(compileTestConfig(config({ xForwardedFor: 'remove', clientIpHeaders: ['X-Real-IP'] }, true))))
    await rawRequest(own.proxyUrl, ['GET / HTTP/1.1', 'Host: public.example'])
    seen = echo.received.at(-1)
    t.same([all(seen, 'x-forwarded-for'), all(seen, 'x-real-ip'), all(seen, 'host')], [[], ['127.0.0.1'], ['public.example']])
  })
})
