/**
 * CORS end to end (docs/cors.md), with the raw requests Chromium sends for
 * `fetch(url, { method: 'PUT', headers: { Authorization, 'Content-Type': 'application/json' }, body })`
 * from a page on https://app.example.com: the preflight, then the actual request, header for header in
 * Chromium's order. Checked each time: what the browser would see (status and CORS fields) and what the
 * upstream received (a preflight never reaches it).
 */
import t from 'tap'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { rawRequest } from '../helpers/raw-http.js'

const AUD = 'https://todo.api'
const APP = 'https://app.example.com'
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'

/** Chromium's preflight for a cross-site PUT with Authorization and a JSON body. */
function chromiumPreflight (host: string, path: string, origin: string, method = 'PUT', headers = 'authorization,content-type'): string[] {
  return [
    `OPTIONS ${path} HTTP/1.1`,
    `Host: ${host}`,
    'Connection: keep-alive',
    'Accept: */*',
    `Access-Control-Request-Method: ${method}`,
    `Access-Control-Request-Headers: ${headers}`,
    `Origin: ${origin}`,
    `User-Agent: ${UA}`,
    'Sec-Fetch-Mode: cors',
    'Sec-Fetch-Site: cross-site',
    'Sec-Fetch-Dest: empty',
    `Referer: ${origin}/`,
    'Accept-Encoding: gzip, deflate, br, zstd',
    'Accept-Language: en-US,en;q=0.9'
  ]
}

/** The actual request Chromium sends once the preflight allowed it. */
function chromiumActual (host: string, method: string, path: string, origin: string, authorization: string | null, body: string): string[] {
  return [
    `${method} ${path} HTTP/1.1`,
    `Host: ${host}`,
    'Connection: keep-alive',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'sec-ch-ua-platform: "Linux"',
    ...(authorization === null ? [] : [`Authorization: ${authorization}`]),
    'sec-ch-ua: "Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"',
    'Content-Type: application/json',
    'sec-ch-ua-mobile: ?0',
    `User-Agent: ${UA}`,
    'Accept: */*',
    `Origin: ${origin}`,
    'Sec-Fetch-Site: cross-site',
    'Sec-Fetch-Mode: cors',
    'Sec-Fetch-Dest: empty',
    `Referer: ${origin}/`,
    'Accept-Encoding: gzip, deflate, br, zstd',
    'Accept-Language: en-US,en;q=0.9'
  ]
}

const CORS_FIELDS = (headers: Record<string, string>): string[] => Object.keys(headers).filter((h) => h.startsWith('access-control-')).sort()

t.test('CORS: a browser-style preflight and actual requests', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { trustProxy: ['127.0.0.1'] },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { todo: { url: echo.url } },
    routes: [
      {
        id: 'todos',
        match: { path: '/todos', prefix: true },
        upstream: 'todo',
        policy: { scopes: { require: ['write:todos'] } },
        cors: { origins: [APP, 'https://*.example.org'], headers: ['authorization', 'content-type'], exposeHeaders: ['WWW-Authenticate', 'Retry-After'], credentials: true, maxAge: '1h' },
        rateLimit: { limit: 3, window: '1m', key: ['subject'] }
      },
      { id: 'plain', match: { path: '/plain', prefix: true }, upstream: 'todo' }
    ]
  })
  t.teardown(() => gw.close())
  const host = new URL(gw.proxyUrl).host
  const writer = `Bearer ${await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', client_id: 'web', scope: 'write:todos' })}`
  const body = '{"title":"write"}'

  t.test('the preflight is answered 204 without a token, and never forwarded', async (t) => {
    const before = echo.received.length
    const res = await rawRequest(gw.proxyUrl, chromiumPreflight(host, '/todos/1', APP))
    t.equal(res.status, 204)
    t.equal(res.headers['access-control-allow-origin'], APP)
    t.equal(res.headers['access-control-allow-credentials'], 'true')
    t.equal(res.headers['access-control-allow-methods'], 'GET, HEAD, POST, PUT, PATCH, DELETE')
    t.equal(res.headers['access-control-allow-headers'], 'authorization, content-type')
    t.equal(res.headers['access-control-max-age'], '3600')
    t.match(res.headers.vary, /Origin/)
    t.equal(res.body, '')
    t.equal(echo.received.length, before, 'the upstream saw nothing')
    const line = gw.decisions().at(-1)
    t.equal(line?.reason, 'cors_preflight')
    t.equal(line?.route, 'todos')
  })

  t.test('the actual request is allowed, forwarded, and readable by the page', async (t) => {
    const res = await rawRequest(gw.proxyUrl, chromiumActual(host, 'PUT', '/todos/1', APP, writer, body), body)
    t.equal(res.status, 200)
    t.equal(res.headers['access-control-allow-origin'], APP)
    t.equal(res.headers['access-control-allow-credentials'], 'true')
    t.equal(res.headers['access-control-expose-headers'], 'WWW-Authenticate, Retry-After')
    t.match(res.headers.vary, /\bOrigin\b/)
    const seen = echo.received.at(-1)
    t.equal(seen?.method, 'PUT')
    t.equal(seen?.headers['x-auth-subject'], 'alice')
    t.equal(seen?.headers.origin, APP, 'the upstream sees the Origin')
  })

  t.test('a denial carries the CORS fields, so the page can read its 401 and its challenge', async (t) => {
    const before = echo.received.length
    const cases: Array<[string, string | null, number, string]> = [
      ['no token', null, 401, 'unauthorized'],
      ['a forged token', 'Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA', 401, 'invalid_token']
    ]
    for (const [name, authorization, status, code] of cases) {
      const res = await rawRequest(gw.proxyUrl, chromiumActual(host, 'PUT', '/todos/1', APP, authorization, body), body)
      t.equal(res.status, status, name)
      t.equal(res.json?.error, code, name)
      t.equal(res.headers['access-control-allow-origin'], APP, name)
      t.equal(res.headers['access-control-expose-headers'], 'WWW-Authenticate, Retry-After', name)
      t.match(res.headers['www-authenticate'], /^Bearer realm="scopegate"/, name)
    }
    const reader = `Bearer ${await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'bob', client_id: 'web', scope: 'read:todos' })}`
    const forbidden = await rawRequest(gw.proxyUrl, chromiumActual(host, 'PUT', '/todos/1', 'https://x.example.org', reader, body), body)
    t.equal(forbidden.status, 403)
    t.equal(forbidden.headers['access-control-allow-origin'], 'https://x.example.org', 'a pattern origin is echoed')
    t.equal(echo.received.length, before, 'no denial reached the upstream')
  })

  t.test('a 429 carries them too', async (t) => {
    const before = echo.received.length
    let last = await rawRequest(gw.proxyUrl, chromiumActual(host, 'PUT', '/todos/2', APP, writer, body), body)
    for (let i = 0; i < 5 && last.status !== 429; i++) last = await rawRequest(gw.proxyUrl, chromiumActual(host, 'PUT', '/todos/2', APP, writer, body), body)
    t.equal(last.status, 429)
    t.equal(last.headers['access-control-allow-origin'], APP)
    t.ok(echo.received.length - before <= 2, 'only the requests within the limit reached the upstream')
  })

  t.test('an origin outside the list gets no CORS field, on the preflight and on the actual request', async (t) => {
    const before = echo.received.length
    const preflight = await rawRequest(gw.proxyUrl, chromiumPreflight(host, '/todos/1', 'https://evil.example'))
    t.equal(preflight.status, 204)
    t.strictSame(CORS_FIELDS(preflight.headers), [])
    t.match(preflight.headers.vary, /Origin/)
    const denied = await rawRequest(gw.proxyUrl, chromiumActual(host, 'PUT', '/todos/1', 'https://evil.example', null, body), body)
    t.equal(denied.status, 401)
    t.strictSame(CORS_FIELDS(denied.headers), [])
    t.equal(echo.received.length, before, 'the upstream saw nothing')
  })

  t.test('a preflight asking for a header the route does not allow is not granted', async (t) => {
    const res = await rawRequest(gw.proxyUrl, chromiumPreflight(host, '/todos/1', APP, 'PUT', 'authorization,x-debug'))
    t.equal(res.status, 204)
    t.strictSame(CORS_FIELDS(res.headers), [])
  })

  t.test('on a route without cors, OPTIONS is an ordinary request: 401 without a token, nothing upstream', async (t) => {
    const before = echo.received.length
    const res = await rawRequest(gw.proxyUrl, chromiumPreflight(host, '/plain/1', APP))
    t.equal(res.status, 401)
    t.strictSame(CORS_FIELDS(res.headers), [])
    t.equal(echo.received.length, before)
  })

  t.test('forward auth: a preflight goes through with no identity and the grant; a denial carries the fields', async (t) => {
    const preflight = await send(gw.adminUrl, '/decisions', {
      method: 'GET',
      headers: { 'x-forwarded-method': 'OPTIONS', 'x-forwarded-uri': '/todos/1', origin: APP, 'access-control-request-method': 'PUT', 'x-auth-subject': 'forged' }
    })
    t.equal(preflight.status, 200)
    t.equal(preflight.headers['access-control-allow-origin'], APP)
    t.equal(preflight.headers['x-auth-subject'], '', 'no identity: the forged copy is overwritten with nothing')
    t.equal(preflight.headers['cache-control'], 'no-store')
    const denied = await send(gw.adminUrl, '/decisions', { headers: { 'x-forwarded-method': 'PUT', 'x-forwarded-uri': '/todos/1', origin: APP } })
    t.equal(denied.status, 401)
    t.equal(denied.headers['access-control-allow-origin'], APP)
  })
})
