/**
 * The status page on the admin listener (docs/observability.md#status-page), end to end: off by default,
 * the page's content and headers, escaping, no token or secret anywhere on it, the live feed of denials,
 * its connection limit and heartbeat, the admin token, a reload that turns it off, and shutdown.
 */
import t from 'tap'
import { compileTestConfig, issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { openEvents } from '../helpers/event-stream.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import type { DenialEntry } from '../../src/observability/denial-feed.js'

const AUD = 'https://todo.api'
const STATUS_TOKEN = 'status-token-0123456789-abcdef'
const INTROSPECTION_SECRET = 'introspection-secret-7f3a9c'
const REDIS_PASSWORD = 'redis-password-5e1d2b'
const UPSTREAM_PASSWORD = 'upstream-password-9b8c7d'

function configOf (issuer: string, jwksUrl: string, echoUrl: string, status: Record<string, unknown> | undefined): Record<string, unknown> {
  return {
    ...(status === undefined ? {} : { server: { admin: { status } } }),
    issuers: [{ id: 'test', issuer, jwksUri: jwksUrl, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { todo: { url: echoUrl } },
    routes: [
      {
        id: 'todos',
        match: { path: '/todos', prefix: true, methods: ['GET', 'POST'] },
        upstream: 'todo',
        policy: {
          audience: { allow: [AUD] },
          clients: { deny: ['blocked-app'] },
          grants: { roles: { admin: ['*'], user: ['read:todos'] } },
          scopes: { require: ['read:todos'] }
        }
      },
      { id: 'health', match: { path: '/health' }, upstream: 'todo', auth: 'none' }
    ]
  }
}

t.test('off by default: /status and /status/events answer the admin listener\'s ordinary 404', async (t) => {
  const { jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway(configOf(jwks.issuer, jwks.url, echo.url, undefined))
  t.teardown(() => gw.close())
  const unknown = await send(gw.adminUrl, '/no-such-path')
  for (const path of ['/status', '/status/events']) {
    const res = await send(gw.adminUrl, path)
    t.equal(res.status, 404, `${path}: 404`)
    t.equal(res.headers['content-type'], unknown.headers['content-type'], `${path}: the same answer as any unknown path`)
    t.notMatch(res.body, /denial|issuer/i)
  }
  t.equal(echo.received.length, 0, 'the upstream saw nothing')
})

t.test('the page: routes and policies in words, issuers and kids, caches, denials; strict headers; values escaped', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway(configOf(jwks.issuer, jwks.url, echo.url, { enabled: true }))
  t.teardown(() => gw.close())

  const hostile = '<script>alert(1)</script>'
  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: '"><img src=x onerror=alert(2)>', client_id: hostile, scope: 'write:todos' })
  const denied = await send(gw.proxyUrl, '/todos/1', { headers: bearer(token) })
  t.equal(denied.status, 403, 'the token lacks read:todos')
  const good = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', client_id: 'web', scope: 'read:todos', roles: ['user'] })
  t.equal((await send(gw.proxyUrl, '/todos/2', { headers: bearer(good) })).status, 200)
  t.equal((await send(gw.proxyUrl, '/todos/2', { headers: bearer(good) })).status, 200, 'again, from the token cache')
  t.equal((await send(gw.proxyUrl, '/todos/3')).status, 401, 'no token')
  t.same(echo.received.map((r) => r.url), ['/todos/2', '/todos/2'], 'only the allowed requests reached the upstream')

  const res = await send(gw.adminUrl, '/status')
  t.equal(res.status, 200)
  t.equal(res.headers['content-type'], 'text/html; charset=utf-8')
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.equal(res.headers['referrer-policy'], 'no-referrer')
  const csp = String(res.headers['content-security-policy'])
  t.match(csp, /default-src 'none'/)
  t.match(csp, /frame-ancestors 'none'/)
  t.match(csp, /script-src 'sha256-[A-Za-z0-9+/=]+'(;|$)/, 'only the page\'s own script, by hash')
  t.notMatch(csp, /unsafe-inline|unsafe-eval/)

  const html = res.body
  t.notOk(html.includes(hostile), 'the hostile client id is not markup')
  t.ok(html.includes('&#60;script&#62;alert(1)&#60;/script&#62;'), 'it is shown as text')
  t.notOk(html.includes('<img'), 'the hostile subject is not markup')
  t.equal(html.match(/<script>/g)?.length, 1, 'one script element: the page\'s own')
  for (const words of ['audience must be one of https://todo.api', 'denies client blocked-app', 'role admin grants *', 'role user grants read:todos', 'requires read:todos', 'no token checked (auth: none)']) {
    t.ok(html.includes(escapeText(words)), `the policy reads: ${words}`)
  }
  t.ok(html.includes(key.kid), 'the issuer\'s kid')
  t.match(html, /<span class="b ready">ready<\/span>/, 'the issuer is ready')
  t.ok(html.includes(escapeText(jwks.url)), 'where its keys come from')
  t.match(html, /verified tokens<\/td><td class="n">2<\/td><td class="n">1<\/td><td class="n">2<\/td><td class="n">33\.3 %/, 'the token cache: two tokens, 1 hit of 3')
  t.match(html, /scope_insufficient/)
  t.match(html, /token_missing/)
  t.match(html, /<td class="m">\/todos\/1<\/td><td class="n">403<\/td>/, 'the denial row: path and status')
})

/** How escapeHtml writes a plain text (the page's escaping of quotes and brackets). */
function escapeText (text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

t.test('no token, Authorization value or secret reaches the page or the live feed', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const echoWithPassword = echo.url.replace('http://', `http://user:${UPSTREAM_PASSWORD}@`)
  const config = configOf(jwks.issuer, jwks.url, echoWithPassword, { enabled: true, token: STATUS_TOKEN })
  const issuers = config.issuers as Array<Record<string, unknown>>
  issuers.push({
    id: 'opaque',
    issuer: 'https://opaque.test',
    jwksUri: `${jwks.url}?api_key=jwks-query-key`,
    algorithms: ['ES256'],
    audiences: [AUD],
    introspection: { endpoint: 'http://127.0.0.1:9/introspect', clientId: 'gw', clientSecret: INTROSPECTION_SECRET, opaqueTokens: true }
  })
  config.redis = { url: `redis://:${REDIS_PASSWORD}@127.0.0.1:9` }
  const gw = await startGateway(config)
  t.teardown(() => gw.close())
  const feed = await openEvents(gw.adminUrl)
  t.teardown(() => feed.close())
  t.equal(feed.status, 200, 'loopback: the feed opens')

  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'carol', client_id: 'web', scope: 'write:todos' })
  const requests = [
    { path: `/todos/a?access_token=${token}`, headers: bearer(token) },
    { path: `/todos/${token}`, headers: bearer(token) },
    { path: '/todos/b', headers: { authorization: `Basic ${Buffer.from(`user:${STATUS_TOKEN}`).toString('base64')}` } },
    { path: '/todos/c', headers: bearer('opaque-access-token-value-4242') }
  ]
  for (const request of requests) {
    const res = await send(gw.proxyUrl, request.path, { headers: request.headers })
    t.ok(res.status >= 400, `${request.path.slice(0, 12)}…: denied (${res.status})`)
  }
  for (let i = 0; i < requests.length; i++) await feed.waitFor((e) => e.event === 'denial' && feed.events.filter((x) => x.event === 'denial').length >= i + 1)
  t.equal(echo.received.length, 0, 'the upstream saw nothing')

  const page = await send(gw.adminUrl, '/status')
  t.equal(page.status, 200)
  const secrets = [token, ...token.split('.'), STATUS_TOKEN, Buffer.from(`user:${STATUS_TOKEN}`).toString('base64'), INTROSPECTION_SECRET,
    REDIS_PASSWORD, UPSTREAM_PASSWORD, 'jwks-query-key', 'opaque-access-token-value-4242', 'access_token']
  const stream = feed.body()
  for (const secret of secrets) {
    t.notOk(page.body.includes(secret), `the page never shows ${secret.slice(0, 10)}…`)
    t.notOk(stream.includes(secret), `the feed never shows ${secret.slice(0, 10)}…`)
  }
  t.match(page.body, /\/todos\/\[redacted\]/, 'a token in the path is masked')
  t.match(page.body, /redis <span class="b disconnected">disconnected<\/span>/, 'redis: its state only')
})

t.test('the live feed: a denial arrives as an event; allows do not', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway(configOf(jwks.issuer, jwks.url, echo.url, { enabled: true }))
  t.teardown(() => gw.close())
  const feed = await openEvents(gw.adminUrl)
  t.teardown(() => feed.close())
  t.equal(feed.status, 200)
  t.equal(feed.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.equal(feed.headers['cache-control'], 'no-store')

  const good = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', client_id: 'web', scope: 'read:todos', roles: ['user'] })
  t.equal((await send(gw.proxyUrl, '/todos/1', { headers: bearer(good) })).status, 200)
  const blocked = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'mallory', client_id: 'blocked-app', scope: 'read:todos' })
  t.equal((await send(gw.proxyUrl, '/todos/2?q=1', { method: 'POST', headers: bearer(blocked) })).status, 401)
  t.same(echo.received.map((r) => r.url), ['/todos/1'], 'the upstream saw the allowed request only')

  const event = await feed.waitFor((e) => e.event === 'denial')
  const entry = JSON.parse(event.data) as DenialEntry
  t.match(entry, { route: 'todos', method: 'POST', path: '/todos/2', reason: 'client_denied', status: 401, decision: 'deny', clientId: 'blocked-app', subject: 'mallory', worker: null })
  t.equal(feed.events.filter((e) => e.event === 'denial').length, 1, 'the allowed request sent no event')
})

t.test('the live feed is bounded: maxConnections at once, then 503; heartbeats keep it open', async (t) => {
  const { jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway(configOf(jwks.issuer, jwks.url, echo.url, { enabled: true, maxConnections: 1 }), { statusHeartbeatMs: 50 })
  t.teardown(() => gw.close())
  const first = await openEvents(gw.adminUrl)
  t.teardown(() => first.close())
  t.equal(first.status, 200)
  const second = await send(gw.adminUrl, '/status/events')
  t.equal(second.status, 503)
  t.same(second.json, { error: 'temporarily_unavailable', error_description: 'too many live status feeds are open' })
  t.equal(second.headers['retry-after'], '5')
  await first.waitFor((e) => e.event === 'comment' && e.data === 'heartbeat')
  t.pass('a heartbeat arrived')
  first.close()
  // The slot is freed once the server sees the close: bounded retries, no sleep-and-hope.
  let third = await openEvents(gw.adminUrl)
  for (let i = 0; i < 50 && third.status === 503; i++) {
    third.close()
    await new Promise((resolve) => setTimeout(resolve, 20))
    third = await openEvents(gw.adminUrl)
  }
  t.teardown(() => third.close())
  t.equal(third.status, 200, 'a closed feed frees its slot')
  t.equal(echo.received.length, 0)
})

t.test('the admin token: right as Bearer or Basic, wrong refused even from loopback; forwarded requests need it', async (t) => {
  const { jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway(configOf(jwks.issuer, jwks.url, echo.url, { enabled: true, token: STATUS_TOKEN }))
  t.teardown(() => gw.close())
  const basic = (password: string): string => `Basic ${Buffer.from(`ops:${password}`).toString('base64')}`
  const cases: Array<[string, Record<string, string>, number, string | null]> = [
    ['loopback, no header', {}, 200, null],
    ['Bearer, right token', { authorization: `Bearer ${STATUS_TOKEN}` }, 200, null],
    ['Basic, right token', { authorization: basic(STATUS_TOKEN) }, 200, null],
    ['Bearer, wrong token', { authorization: 'Bearer not-the-token-at-all-000' }, 401, 'invalid_token'],
    ['Basic, wrong token', { authorization: basic('nope') }, 401, 'invalid_token'],
    ['forwarded by a local proxy, no token', { 'x-forwarded-for': '203.0.113.9' }, 401, 'unauthorized'],
    ['forwarded by a local proxy, right token', { 'x-forwarded-for': '203.0.113.9', authorization: `Bearer ${STATUS_TOKEN}` }, 200, null]
  ]
  for (const [name, headers, status, error] of cases) {
    const res = await send(gw.adminUrl, '/status', { headers })
    t.equal(res.status, status, `${name}: ${status}`)
    t.equal(res.headers['cache-control'], 'no-store')
    if (error === null) continue
    t.equal(res.json?.error, error, `${name}: ${error}`)
    t.match(String(res.headers['www-authenticate']), /^Bearer realm="scopegate status".*Basic realm="scopegate status"/)
    t.notOk(res.body.includes(STATUS_TOKEN))
  }
  const refusedFeed = await send(gw.adminUrl, '/status/events', { headers: { forwarded: 'for=203.0.113.9' } })
  t.equal(refusedFeed.status, 401, 'the live feed has the same rule')
  t.notOk(gw.rawLog().includes(STATUS_TOKEN), 'the token is never logged')
  t.equal(echo.received.length, 0)
})

t.test('without a token, a forwarded request is refused with 403', async (t) => {
  const { jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway(configOf(jwks.issuer, jwks.url, echo.url, { enabled: true }))
  t.teardown(() => gw.close())
  const res = await send(gw.adminUrl, '/status', { headers: { 'x-real-ip': '198.51.100.7', authorization: 'Bearer anything-at-all-here' } })
  t.equal(res.status, 403)
  t.same(res.json, { error: 'access_denied', error_description: 'the status page is served to loopback clients only' })
  t.equal(res.headers['www-authenticate'], undefined)
  t.equal(echo.received.length, 0)
})

t.test('a reload that turns the page off closes open feeds; shutdown closes them too', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const on = configOf(jwks.issuer, jwks.url, echo.url, { enabled: true })
  const gw = await startGateway(on, { statusHeartbeatMs: 50 })
  t.teardown(() => gw.close())

  const feed = await openEvents(gw.adminUrl)
  t.teardown(() => feed.close())
  t.ok(await gw.gateway.reload(compileTestConfig(configOf(jwks.issuer, jwks.url, echo.url, undefined))), 'reloaded without the page')
  t.ok(await feed.ended(), 'the open feed ends at its next heartbeat')
  t.equal((await send(gw.adminUrl, '/status')).status, 404, 'the page is off')

  t.ok(await gw.gateway.reload(compileTestConfig(on)), 'reloaded with the page')
  const again = await openEvents(gw.adminUrl)
  t.teardown(() => again.close())
  t.equal(again.status, 200)
  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'x', client_id: 'web', scope: 'nothing' })
  t.equal((await send(gw.proxyUrl, '/todos', { headers: bearer(token) })).status, 403)
  await again.waitFor((e) => e.event === 'denial')
  const closing = gw.close()
  t.ok(await again.ended(), 'shutdown ends the feed')
  await closing
  t.equal(echo.received.length, 0)
})

t.test('denials made while the page is off are not kept; HEAD never opens a feed', async (t) => {
  const { jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway(configOf(jwks.issuer, jwks.url, echo.url, undefined))
  t.teardown(() => gw.close())
  t.equal((await send(gw.proxyUrl, '/todos/while-off')).status, 401)
  t.ok(await gw.gateway.reload(compileTestConfig(configOf(jwks.issuer, jwks.url, echo.url, { enabled: true }))))
  t.equal((await send(gw.proxyUrl, '/todos/while-on')).status, 401)
  const page = await send(gw.adminUrl, '/status')
  t.notMatch(page.body, /while-off/, 'the denial made while off is not there')
  t.match(page.body, /while-on/)
  t.equal((await send(gw.adminUrl, '/status/events', { method: 'HEAD' })).status, 404, 'HEAD of the feed: 404')
  t.equal((await send(gw.adminUrl, '/status', { method: 'HEAD' })).status, 200, 'HEAD of the page: 200')
  t.equal((await send(gw.adminUrl, '/status', { method: 'POST' })).status, 404, 'the page is read-only')
  t.equal(echo.received.length, 0)
})
