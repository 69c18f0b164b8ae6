/**
 * HTTP/2 on the proxy listener (docs/tls.md): h2 by ALPN on a TLS listener, with HTTP/1.1 on the same port.
 * Everything that applies to HTTP/1.1 applies to h2: the decision, the host rules in h2's shape, request
 * hygiene, streaming both ways, forwarding headers, CORS, rate limits, the decision log; and no
 * connection-specific header ever goes out on an h2 response (RFC 9113 §8.2.2).
 */
import { createHash } from 'node:crypto'
import http from 'node:http'
import http2 from 'node:http2'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { certificateThumbprint } from '../../src/http/client-certificate.js'
import { certificateKit } from '../helpers/certificates.js'
import { closeServer, listenLocal, trackSockets } from '../helpers/echo-upstream.js'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { mintToken } from '../helpers/jwks-server.js'
import { curl, h2Request, h2Session, httpsRequest } from '../helpers/tls-clients.js'

const AUD = 'https://todo.api'
const APP = 'https://app.example.com'
const kit = certificateKit()
t.teardown(() => { kit.remove() })
const server = kit.issue('server')
const client = kit.issue('client', { client: true })
const caPem = kit.ca.pem
const pem = (file: string): string => readFileSync(file, 'utf8')

/** 20 MiB in 64 KiB chunks of varied bytes, and its SHA-256. */
const CHUNKS = Array.from({ length: 320 }, (_, i) => Buffer.alloc(65536, i % 251))
const BIG_SHA256 = createHash('sha256').update(Buffer.concat(CHUNKS)).digest('hex')

/** An upstream whose answers carry HTTP/1.1 connection headers, and one that streams 20 MiB. */
async function hopUpstream (): Promise<{ url: string, close: () => Promise<void> }> {
  const upstream = http.createServer((req, res) => {
    req.resume()
    if (req.url?.startsWith('/hop/big') === true) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      const write = (i: number): void => {
        if (i === CHUNKS.length) { res.end(); return }
        if (res.write(CHUNKS[i])) write(i + 1)
        else res.once('drain', () => { write(i + 1) })
      }
      write(0)
      return
    }
    res.writeHead(200, { connection: 'keep-alive, x-hop', 'keep-alive': 'timeout=5', 'x-hop': 'secret', upgrade: 'h2c', 'transfer-encoding': 'chunked', 'content-type': 'text/plain' })
    res.end('hop')
  })
  const sockets = trackSockets(upstream)
  const port = await listenLocal(upstream)
  return { url: `http://127.0.0.1:${port}`, close: () => closeServer(upstream, sockets) }
}

t.test('h2 over TLS, HTTP/1.1 on the same port', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const hop = await hopUpstream()
  t.teardown(() => hop.close())
  const gw = await startGateway({
    server: { proxy: { http2: true, tls: { cert: server.cert, key: server.key } } },
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { echo: { url: echo.url }, hop: { url: hop.url } },
    routes: [
      { id: 'api', match: { path: '/api', prefix: true }, upstream: 'echo', policy: { scopes: { require: ['read'] } } },
      { id: 'hop', match: { path: '/hop', prefix: true }, upstream: 'hop', auth: 'none' },
      { id: 'once', match: { path: '/once', prefix: true }, upstream: 'echo', rateLimit: { limit: 1, window: '1m', key: ['subject'] } },
      { id: 'app', match: { path: '/app', prefix: true }, upstream: 'echo', cors: { origins: [APP], headers: ['authorization'] } }
    ]
  })
  t.teardown(() => gw.close())
  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', scope: 'read' })
  const bearer = `Bearer ${token}`
  const session = await h2Session(gw.proxyUrl, { ca: caPem })
  t.teardown(() => session.close())
  t.equal(session.alpnProtocol, 'h2', 'ALPN chose h2')

  t.test('allow and deny', async (t) => {
    const before = echo.received.length
    const allowed = await h2Request(session, { ':path': '/api/items?x=1', authorization: bearer, 'x-auth-subject': 'mallory', 'x-forwarded-proto': 'http' })
    t.equal(allowed.status, 200)
    const seen = echo.received.at(-1)
    t.equal(seen?.url, '/api/items?x=1')
    t.equal(seen?.headers['x-auth-subject'], 'alice')
    t.equal(seen?.headers['x-forwarded-proto'], 'https')
    t.equal(seen?.headers['x-forwarded-host'], new URL(gw.proxyUrl).host, ':authority is the forwarded host')
    t.notOk(seen?.rawHeaders.some((name) => name.startsWith(':')), 'no pseudo-header upstream')
    const denied = await h2Request(session, { ':path': '/api/items' })
    t.equal(denied.status, 401)
    t.match(denied.headers['www-authenticate'], /^Bearer/)
    t.equal(echo.received.length, before + 1, 'the upstream saw nothing of the denial')
    const lines = gw.decisions().slice(-2)
    t.same(lines.map((l) => l.status), [200, 401], 'both are in the decision log')
  })

  t.test('HTTP/1.1 and curl on the same port', async (t) => {
    const h1 = await httpsRequest(`${gw.proxyUrl}/api/one`, { ca: caPem, headers: { authorization: bearer } })
    t.equal(h1.status, 200)
    const viaCurl = await curl(`${gw.proxyUrl}/api/curl`, ['--http2', '--cacert', kit.ca.cert, '-H', `authorization: ${bearer}`])
    t.equal(viaCurl.status, 200)
    t.equal(viaCurl.httpVersion, '2')
    const viaCurl1 = await curl(`${gw.proxyUrl}/api/curl1`, ['--http1.1', '--cacert', kit.ca.cert, '-H', `authorization: ${bearer}`])
    t.equal(viaCurl1.httpVersion, '1.1')
    t.equal(viaCurl1.status, 200)
    t.same(echo.received.slice(-3).map((r) => r.url), ['/api/one', '/api/curl', '/api/curl1'])
  })

  // Each hostile shape is answered over h2 as over HTTP/1.1, and reaches no upstream.
  const hostile: Array<[string, http2.OutgoingHttpHeaders, number, string]> = [
    // Node's compatibility layer would show `evil.example` as req.headers.host, :authority as req.authority.
    ['a Host that contradicts :authority', { ':path': '/api/x', ':authority': new URL(gw.proxyUrl).host, host: 'evil.example' }, 400, 'host_mismatch'],
    ['user information in :authority', { ':path': '/api/x', ':authority': 'user@127.0.0.1' }, 400, 'host_mismatch'],
    ['a token in the query and the header', { ':path': '/api/x?access_token=abc' }, 400, 'token_duplicated'],
    ['an expectation other than 100-continue', { ':path': '/api/x', expect: 'something' }, 417, 'expectation_unsupported'],
    ['an encoded slash', { ':path': '/api/a%2F..%2F..%2Fadmin' }, 400, 'path_invalid'],
    ['dot segments escaping the route', { ':path': '/api/../hop/x' }, 0, ''],
    ['no route', { ':path': '/elsewhere' }, 404, 'no_route'],
    // scopegate tunnels nothing: a CONNECT stream is answered as a request no route takes, never by Node's bare 405.
    ['CONNECT', { ':method': 'CONNECT', ':authority': 'example.com:443' }, 404, 'no_route']
  ]
  for (const [name, headers, status, reason] of hostile) {
    t.test(name, async (t) => {
      const before = echo.received.length
      const over2 = await h2Request(session, { authorization: bearer, ...headers })
      if (status !== 0) {
        t.equal(over2.status, status)
        const line = gw.decisions().at(-1)
        t.equal(line?.reason, reason, 'the decision log names the reason')
      }
      const h1Headers: Record<string, string> = { authorization: bearer }
      for (const [key, value] of Object.entries(headers)) if (!key.startsWith(':') && typeof value === 'string') h1Headers[key] = value
      if (headers[':authority'] === undefined) {
        const over1 = await httpsRequest(`${gw.proxyUrl}${String(headers[':path'])}`, { ca: caPem, headers: h1Headers })
        t.equal(over2.status, over1.status, 'the same answer as over HTTP/1.1')
        t.equal(over2.json?.error, over1.json?.error)
      }
      if (status !== 0) t.equal(echo.received.length, before, 'the upstream saw nothing')
    })
  }

  t.test('connection-specific headers never go out on an h2 response', async (t) => {
    const seen = await h2Request(session, { ':path': '/hop/x' })
    t.equal(seen.status, 200)
    t.equal(seen.body, 'hop')
    for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'x-hop']) t.equal(seen.headers[name], undefined, `no ${name}`)
  })

  t.test('20 MiB streamed both ways', async (t) => {
    echo.setMode('digest')
    t.teardown(() => { echo.setMode('echo') })
    const up = await h2Request(session, { ':method': 'POST', ':path': '/api/upload', authorization: bearer, 'content-type': 'application/octet-stream' }, CHUNKS)
    t.equal(up.status, 200)
    t.same(up.json, { bytes: 20 * 1024 * 1024, sha256: BIG_SHA256 }, 'the upstream received every byte')
    const down = await new Promise<{ status: number, sha256: string, bytes: number }>((resolve, reject) => {
      const stream = session.request({ ':path': '/hop/big' })
      const hash = createHash('sha256')
      let bytes = 0
      let status = 0
      stream.on('response', (h) => { status = Number(h[':status']) })
      stream.on('data', (chunk: Buffer) => { bytes += chunk.length; hash.update(chunk) })
      stream.on('end', () => { resolve({ status, bytes, sha256: hash.digest('hex') }) })
      stream.on('error', reject)
    })
    t.same(down, { status: 200, bytes: 20 * 1024 * 1024, sha256: BIG_SHA256 }, 'the client received every byte')
  })

  t.test('Expect: 100-continue over h2: the continue only after an allow', async (t) => {
    const before = echo.received.length
    const ask = (authorization: string | undefined): Promise<{ continued: boolean, status: number }> => new Promise((resolve, reject) => {
      const headers: http2.OutgoingHttpHeaders = { ':method': 'POST', ':path': '/api/expect', expect: '100-continue', 'content-type': 'text/plain' }
      if (authorization !== undefined) headers.authorization = authorization
      const stream = session.request(headers, { endStream: false })
      let continued = false
      stream.on('continue', () => { continued = true; stream.end('the body') })
      stream.on('response', (h) => {
        const status = Number(h[':status'])
        stream.resume()
        stream.on('end', () => { resolve({ continued, status }) })
        if (!continued) stream.close()
      })
      stream.on('error', reject)
    })
    t.same(await ask(undefined), { continued: false, status: 401 }, 'a denial: no 100, the body never sent')
    t.equal(echo.received.length, before)
    t.same(await ask(bearer), { continued: true, status: 200 }, 'an allow: 100, then the body')
    t.equal(echo.received.at(-1)?.body, 'the body')
  })

  t.test('rate limits and CORS apply over h2', async (t) => {
    const before = echo.received.length
    t.equal((await h2Request(session, { ':path': '/once/a', authorization: bearer })).status, 200)
    const limited = await h2Request(session, { ':path': '/once/b', authorization: bearer })
    t.equal(limited.status, 429)
    t.ok(limited.headers['retry-after'] !== undefined)
    const preflight = await h2Request(session, { ':method': 'OPTIONS', ':path': '/app/x', origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' })
    t.equal(preflight.status, 204)
    t.equal(preflight.headers['access-control-allow-origin'], APP)
    const cors = await h2Request(session, { ':path': '/app/x', origin: APP, authorization: bearer })
    t.equal(cors.status, 200)
    t.equal(cors.headers['access-control-allow-origin'], APP)
    t.same(echo.received.slice(before).map((r) => r.url), ['/once/a', '/app/x'], 'only the allowed requests reached the upstream')
  })
})

t.test("the client certificate's thumbprint over h2: once per session", async (t) => {
  const seen: Array<string | undefined> = []
  const tlsServer = http2.createSecureServer({ cert: pem(server.cert), key: pem(server.key), ca: caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    seen.push(certificateThumbprint(req as unknown as http.IncomingMessage))
    res.end('ok')
  })
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve))
  const session = await h2Session(`https://127.0.0.1:${(tlsServer.address() as { port: number }).port}`, { ca: caPem, cert: pem(client.cert), key: pem(client.key) })
  t.teardown(() => new Promise<void>((resolve) => { session.destroy(); tlsServer.close(() => resolve()) }))
  await h2Request(session, { ':path': '/1' })
  await h2Request(session, { ':path': '/2' })
  t.same(seen, [client.thumbprint, client.thumbprint])
})
