/**
 * HTTP/2 to upstreams (`upstreams.NAME.http2`, docs/grpc.md), against real node:http2 servers: h2c with
 * prior knowledge for an http:// upstream, h2 by ALPN with the test CA for an https:// one. The upstream
 * sees HTTP/2, the identity headers (not the client's copies) and no connection-level header; bodies of
 * 20 MB stream both ways intact (SHA-256); a denial never reaches it; a hung upstream is a 504, a closed
 * port a 502, a certificate that does not verify a 502 `upstream_tls`.
 */
import { createHash } from 'node:crypto'
import http from 'node:http'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { startEcho } from '../helpers/echo-upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { makeKey, mintToken, startJwksServer } from '../helpers/jwks-server.js'
import { makeTestPki } from '../helpers/test-ca.js'

const API = 'https://h2.api'
const MB = 1024 * 1024

interface SeenH2 {
  httpVersion: string
  method: string
  path: string
  authority: string | undefined
  headers: http2.IncomingHttpHeaders
  bytes: number
  sha256: string
  alpn: string | false | undefined
}

interface H2Upstream { url: string, seen: SeenH2[], close: () => Promise<void> }

/**
 * An HTTP/2 upstream: records each request with its body's digest; `/download/N` answers N MiB of
 * deterministic bytes, `/hang` never answers, anything else answers JSON with what it saw.
 */
async function startH2Upstream (t: Test, secure?: { cert: Buffer, key: Buffer }): Promise<H2Upstream> {
  const seen: SeenH2[] = []
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void => {
    const hash = createHash('sha256')
    let bytes = 0
    req.on('data', (chunk: Buffer) => { bytes += chunk.length; hash.update(chunk) })
    req.on('end', () => {
      const record: SeenH2 = {
        httpVersion: req.httpVersion,
        method: req.method,
        path: req.url,
        authority: req.headers[':authority'],
        headers: req.headers,
        bytes,
        sha256: hash.digest('hex'),
        alpn: (req.socket as unknown as { alpnProtocol?: string | false }).alpnProtocol
      }
      seen.push(record)
      if (req.url === '/hang') return
      const download = /^\/download\/(\d+)$/.exec(req.url)
      if (download !== null) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        const block = Buffer.alloc(MB, 7)
        let left = Number(download[1])
        const pump = (): void => {
          while (left > 0) {
            left--
            if (!res.write(block)) { res.once('drain', pump); return }
          }
          res.end()
        }
        pump()
        return
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'h2' })
      res.end(JSON.stringify({ bytes, sha256: record.sha256 }))
    })
  }
  const server = secure === undefined ? http2.createServer(handler) : http2.createSecureServer({ ...secure, allowHTTP1: false }, handler)
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on('session', (session) => { sessions.add(session); session.on('close', () => sessions.delete(session)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const close = async (): Promise<void> => {
    for (const session of sessions) session.destroy()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  }
  t.teardown(close)
  const scheme = secure === undefined ? 'http' : 'https'
  return { url: `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close }
}

/** A request with a streamed body of `size` bytes; resolves with the status, body digest and length. */
function sendLarge (base: string, path: string, headers: Record<string, string>, size: number): Promise<{ status: number, bytes: number, sha256: string, body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(base)
    const req = http.request({ host: url.hostname, port: url.port, method: size > 0 ? 'POST' : 'GET', path, headers, agent: false }, (res) => {
      const hash = createHash('sha256')
      let bytes = 0
      const head: Buffer[] = []
      res.on('data', (chunk: Buffer) => { bytes += chunk.length; hash.update(chunk); if (head.length < 4) head.push(chunk) })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, bytes, sha256: hash.digest('hex'), body: Buffer.concat(head).toString('utf8', 0, 2000) }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    const block = Buffer.alloc(MB)
    for (let i = 0; i < block.length; i++) block[i] = i % 251
    let left = size / MB
    const pump = (): void => {
      while (left > 0) {
        left--
        if (!req.write(block)) { req.once('drain', pump); return }
      }
      req.end()
    }
    pump()
  })
}

function digestOf (blocks: number, fill: (block: Buffer) => void): string {
  const hash = createHash('sha256')
  const block = Buffer.alloc(MB)
  fill(block)
  for (let i = 0; i < blocks; i++) hash.update(block)
  return hash.digest('hex')
}

t.test('HTTP/2 upstreams', async (t) => {
  const key = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  const token = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice', scope: 'read' })
  const issuers = [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }]
  const gatewayFor = async (t: Test, upstream: Record<string, unknown>): Promise<Awaited<ReturnType<typeof startGateway>>> => {
    const gw = await startGateway({
      issuers,
      upstreams: { h2: { http2: true, ...upstream } },
      routes: [{ id: 'api', match: { path: '/api', prefix: true }, upstream: 'h2', stripPrefix: true }]
    })
    t.teardown(() => gw.close())
    return gw
  }

  t.test('h2c with prior knowledge: the upstream sees HTTP/2 and the right headers', async (t) => {
    const upstream = await startH2Upstream(t)
    const gw = await gatewayFor(t, { url: upstream.url })
    const res = await send(gw.proxyUrl, '/api/items?q=1', {
      headers: { ...bearer(token), 'x-auth-subject': 'mallory', 'x-forwarded-host': 'evil', connection: 'keep-alive, x-private', 'x-private': 'hop', te: 'trailers' }
    })
    t.equal(res.status, 200)
    t.equal(res.headers['x-upstream'], 'h2', 'the upstream\'s response headers reach the client')
    t.equal(upstream.seen.length, 1)
    const seen = upstream.seen[0]
    t.equal(seen?.httpVersion, '2.0')
    t.equal(seen?.method, 'GET')
    t.equal(seen?.path, '/items?q=1', 'the normalized path with the prefix stripped, and the query')
    t.equal(seen?.authority, new URL(upstream.url).host, ':authority is the upstream\'s host')
    t.equal(seen?.headers['x-auth-subject'], 'alice', 'identity headers, not the client\'s copy')
    t.equal(seen?.headers['x-auth-route'], 'api')
    t.not(seen?.headers['x-forwarded-host'], 'evil')
    t.equal(seen?.headers['x-private'], undefined, 'a header the client named in Connection stays behind')
    t.equal(seen?.headers.connection, undefined)
    t.equal(seen?.headers.te, 'trailers', 'te: trailers is the one TE HTTP/2 carries')
    t.match(gw.decisions().at(-1), { decision: 'allow', route: 'api', status: 200 })
  })

  t.test('20 MB each way, streamed intact', async (t) => {
    const upstream = await startH2Upstream(t)
    const gw = await gatewayFor(t, { url: upstream.url })
    const up = await sendLarge(gw.proxyUrl, '/api/upload', bearer(token), 20 * MB)
    t.equal(up.status, 200)
    const expected = digestOf(20, (block) => { for (let i = 0; i < block.length; i++) block[i] = i % 251 })
    t.same(JSON.parse(up.body), { bytes: 20 * MB, sha256: expected }, 'the upstream received every byte')
    const down = await sendLarge(gw.proxyUrl, '/api/download/20', bearer(token), 0)
    t.equal(down.status, 200)
    t.equal(down.bytes, 20 * MB)
    t.equal(down.sha256, digestOf(20, (block) => block.fill(7)), 'the client received every byte')
  })

  t.test('a denial never reaches the upstream', async (t) => {
    const upstream = await startH2Upstream(t)
    const gw = await gatewayFor(t, { url: upstream.url })
    const res = await send(gw.proxyUrl, '/api/items', {})
    t.equal(res.status, 401)
    t.equal(res.json?.error, 'unauthorized')
    t.same(upstream.seen, [])
  })

  t.test('h2 over TLS by ALPN, verified against the configured CA', async (t) => {
    const pki = makeTestPki(t)
    const upstream = await startH2Upstream(t, { cert: pki.read(pki.serverCert), key: pki.read(pki.serverKey) })
    const gw = await gatewayFor(t, { url: upstream.url, tls: { ca: pki.caCert, servername: 'localhost' } })
    const res = await send(gw.proxyUrl, '/api/secure', { headers: bearer(token) })
    t.equal(res.status, 200)
    t.equal(upstream.seen[0]?.httpVersion, '2.0')
    t.equal(upstream.seen[0]?.alpn, 'h2')

    const wrong = await gatewayFor(t, { url: upstream.url, tls: { ca: pki.otherCaCert, servername: 'localhost' } })
    const refused = await send(wrong.proxyUrl, '/api/secure', { headers: bearer(token) })
    t.equal(refused.status, 502)
    t.same(refused.json, { error: 'bad_gateway', error_description: 'the upstream could not be reached' })
    t.match(wrong.decisions().at(-1), { reason: 'upstream_tls', status: 502 })
    t.equal(upstream.seen.length, 1, 'the upstream saw no second request')
  })

  t.test('failures: a hung upstream is a 504, one that does not speak HTTP/2 or a closed port a 502', async (t) => {
    const upstream = await startH2Upstream(t)
    const gw = await gatewayFor(t, { url: upstream.url, timeout: '300ms' })
    const hung = await send(gw.proxyUrl, '/api/hang', { headers: bearer(token) })
    t.equal(hung.status, 504)
    t.equal(hung.json?.error, 'gateway_timeout')
    t.match(gw.decisions().at(-1), { reason: 'upstream_timeout', status: 504 })

    // http2: true in front of a server that speaks only HTTP/1.1: it refuses the connection preface.
    const h1 = await startEcho()
    t.teardown(() => h1.close())
    const mismatch = await gatewayFor(t, { url: h1.url })
    const spoken = await send(mismatch.proxyUrl, '/api/x', { headers: bearer(token) })
    t.equal(spoken.status, 502, 'an upstream that does not speak HTTP/2: 502, not a hang')
    t.equal(spoken.json?.error, 'bad_gateway')
    t.same(h1.received, [], 'the HTTP/1.1 server read no request')

    const closed = await startH2Upstream(t)
    await closed.close()
    const down = await gatewayFor(t, { url: closed.url })
    const refused = await send(down.proxyUrl, '/api/x', { headers: bearer(token) })
    t.equal(refused.status, 502)
    t.match(down.decisions().at(-1), { reason: 'upstream_refused', status: 502 })
  })
})
