/**
 * What scopegate's HTTP/1.1 forwarder (`src/http/h1-forward.ts`) does with bodies and connections, beyond
 * what the header and status tests cover: backpressure both ways with a slow client (scopegate holds a
 * bounded part of a large answer, and every byte arrives), an upstream that dies mid-answer (the client's
 * connection is destroyed, never ended cleanly), a client that leaves mid-upload or mid-wait (the upstream
 * request is aborted), the upstream's trailers, and keep-alive connections to the upstream reused across
 * many requests.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import net, { type AddressInfo, type Socket } from 'node:net'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { Client } from 'undici'
import { issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import { mintToken } from '../helpers/jwks-server.js'
import { closeServer, trackSockets } from '../helpers/echo-upstream.js'

const API = 'https://h1.api'

type Handler = (req: IncomingMessage, res: ServerResponse) => void

/** A gateway in front of an upstream whose handler the test sets per case; and a valid token. */
async function setUp (t: Test): Promise<{ gw: TestGateway, token: string, upstream: Server, connections: () => number, handle: (h: Handler) => void }> {
  const { key, jwks } = await issuerAndEcho(t)
  let handler: Handler = (_req, res) => { res.end('unset') }
  let connections = 0
  const upstream = createServer((req, res) => { handler(req, res) })
  upstream.on('connection', () => { connections++ })
  const sockets = trackSockets(upstream)
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(() => closeServer(upstream, sockets))
  const gw = await startGateway({
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { app: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, timeout: '10s' } },
    routes: [{ id: 'api', match: { path: '/api', prefix: true }, upstream: 'app' }]
  })
  t.teardown(() => gw.close())
  const token = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice' })
  return { gw, token, upstream, connections: () => connections, handle: (h) => { handler = h } }
}

/** A raw connection to the gateway, with one request written on it. */
function connect (gw: TestGateway, request: string): Socket {
  const url = new URL(gw.proxyUrl)
  const socket = net.connect(Number(url.port), url.hostname)
  socket.write(request)
  return socket
}

/** Polls `read` every 20 ms until it returns the same value `stableFor` times in a row (at most `maxPolls` polls). */
async function settled (read: () => number, stableFor = 10, maxPolls = 500): Promise<number> {
  let last = -1
  let same = 0
  for (let i = 0; i < maxPolls && same < stableFor; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    const now = read()
    same = now === last ? same + 1 : 0
    last = now
  }
  return last
}

/** Resolves once `predicate` holds, polling every 10 ms for at most `maxPolls` polls; false if it never did. */
async function eventually (predicate: () => boolean, maxPolls = 1000): Promise<boolean> {
  for (let i = 0; i < maxPolls; i++) {
    if (predicate()) return true
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return predicate()
}

t.test('a slow client: the upstream is paused, scopegate holds a bounded part, every byte arrives', async (t) => {
  const { gw, token, handle } = await setUp(t)
  const TOTAL = 64 * 1024 * 1024
  const block = randomBytes(1024 * 1024)
  const sent = createHash('sha256')
  let written = 0
  let ended = false
  handle((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(TOTAL) })
    // Written as fast as the connection to scopegate takes it, waiting for drain like any well-behaved server.
    const pump = (): void => {
      while (written < TOTAL) {
        const chunk = block.subarray(0, Math.min(block.length, TOTAL - written))
        sent.update(chunk)
        written += chunk.length
        if (!res.write(chunk)) { res.once('drain', pump); return }
      }
      ended = true
      res.end()
    }
    pump()
  })
  const socket = connect(gw, `GET /api/big HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)
  t.teardown(() => socket.destroy())
  const [first] = await once(socket, 'data') as [Buffer]
  socket.pause()
  const stalled = await settled(() => written)
  // Without backpressure scopegate would read all of it into memory at loopback speed. What is in flight
  // now sits in socket buffers (the kernel's, both connections) and a few chunks of Node's.
  t.ok(stalled < TOTAL / 2, `the upstream stalled after ${(stalled / 2 ** 20).toFixed(1)} MiB of ${TOTAL / 2 ** 20} MiB`)
  t.notOk(ended, 'and has not finished')

  const received = createHash('sha256')
  const text = first.toString('latin1')
  const headEnd = text.indexOf('\r\n\r\n')
  t.match(text.slice(0, headEnd), /^HTTP\/1\.1 200 /)
  t.match(text.slice(0, headEnd).toLowerCase(), `content-length: ${TOTAL}`, 'the upstream\'s framing is kept')
  let bytes = first.length - headEnd - 4
  received.update(first.subarray(headEnd + 4))
  socket.on('data', (chunk: Buffer) => { bytes += chunk.length; received.update(chunk) })
  socket.resume()
  await once(socket, 'end')
  t.equal(bytes, TOTAL, 'every byte arrived')
  t.equal(received.digest('hex'), sent.digest('hex'), 'the same bytes, in order')
  t.ok(ended, 'the upstream finished once the client read')
})

t.test('the upstream dies mid-answer: the client\'s connection is destroyed, not ended cleanly', async (t) => {
  const { gw, token, handle } = await setUp(t)
  for (const framing of ['content-length', 'chunked'] as const) {
    await t.test(framing, async (t) => {
      let requests = 0
      handle((_req, res) => {
        requests++
        res.writeHead(200, framing === 'content-length' ? { 'content-length': String(1024 * 1024) } : {})
        res.write(Buffer.alloc(64 * 1024, 0x61), () => { res.socket?.destroy() })
      })
      const socket = connect(gw, `GET /api/cut HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\n\r\n`)
      let text = ''
      socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1') })
      const closed = await Promise.race([
        once(socket, 'close').then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => { resolve(false) }, 10_000))
      ])
      socket.destroy()
      t.ok(closed, 'scopegate closed the client\'s connection (a keep-alive one)')
      t.equal(requests, 1, 'the upstream got the request once: nothing re-sent')
      const headEnd = text.indexOf('\r\n\r\n')
      t.match(text.slice(0, headEnd), /^HTTP\/1\.1 200 /, 'the status had been sent')
      const body = text.slice(headEnd + 4)
      if (framing === 'content-length') {
        t.ok(body.length < 1024 * 1024, `a body shorter than its Content-Length (${body.length} bytes)`)
      } else {
        t.match(text.slice(0, headEnd).toLowerCase(), 'transfer-encoding: chunked')
        t.notOk(body.endsWith('0\r\n\r\n'), 'no last chunk: the client can tell the body is incomplete')
      }
    })
  }
})

t.test('a client that leaves mid-upload: the upstream request is aborted', async (t) => {
  const { gw, token, handle } = await setUp(t)
  let upstreamBytes = 0
  let upstreamComplete: boolean | null = null
  let requests = 0
  handle((req, res) => {
    requests++
    req.on('data', (chunk: Buffer) => { upstreamBytes += chunk.length })
    req.on('close', () => { upstreamComplete = req.complete })
    req.on('end', () => { res.end('read it all') })
  })
  const LENGTH = 16 * 1024 * 1024
  const socket = connect(gw, `POST /api/upload HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\n` +
    `Content-Type: application/octet-stream\r\nContent-Length: ${LENGTH}\r\n\r\n`)
  socket.on('error', () => {})
  socket.write(Buffer.alloc(1024 * 1024, 0x62))
  t.ok(await eventually(() => upstreamBytes > 0), 'the upload began to reach the upstream')
  socket.destroy()
  t.ok(await eventually(() => upstreamComplete !== null), 'the upstream\'s request closed')
  t.equal(upstreamComplete, false, 'incomplete: aborted, not ended as if whole')
  t.ok(upstreamBytes < LENGTH, 'the upstream got only part of the body')
  t.equal(requests, 1)
})

t.test('a client that leaves while the upstream thinks: the upstream request is aborted', async (t) => {
  const { gw, token, handle } = await setUp(t)
  let upstreamClosedUnanswered = false
  let requests = 0
  handle((_req, res) => {
    requests++
    res.on('close', () => { upstreamClosedUnanswered = !res.writableEnded })
  })
  const socket = connect(gw, `GET /api/slow HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\n\r\n`)
  t.ok(await eventually(() => requests === 1), 'the request reached the upstream')
  socket.destroy()
  t.ok(await eventually(() => upstreamClosedUnanswered), 'the upstream saw its connection close before it answered')
  t.equal(requests, 1)
})

t.test('the upstream\'s trailers reach the client of a chunked answer', async (t) => {
  const { gw, token, handle } = await setUp(t)
  let requests = 0
  handle((_req, res) => {
    requests++
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' })
    res.write('part one, ')
    res.addTrailers({ 'x-checksum': 'abc123' })
    res.end('part two')
  })
  const socket = connect(gw, `GET /api/trailers HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)
  let text = ''
  socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1') })
  await once(socket, 'end')
  t.equal(requests, 1)
  t.match(text, /^HTTP\/1\.1 200 /)
  t.match(text, /part one, \r\n[0-9a-f]+\r\npart two\r\n0\r\nx-checksum: abc123\r\n\r\n$/, 'the body, then the trailer after the last chunk')
})

t.test('1,000 sequential keep-alive requests reuse the upstream connection', async (t) => {
  const { gw, token, handle, connections } = await setUp(t)
  let requests = 0
  handle((req, res) => {
    requests++
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(req.url)
  })
  const client = new Client(gw.proxyUrl, { pipelining: 1 })
  t.teardown(() => client.close())
  let ok = 0
  for (let i = 0; i < 1000; i++) {
    const res = await client.request({ path: `/api/n/${i}`, method: 'GET', headers: { authorization: `Bearer ${token}` } })
    const body = await res.body.text()
    if (res.statusCode === 200 && body === `/api/n/${i}`) ok++
  }
  t.equal(ok, 1000, 'every answer is its own request\'s')
  t.equal(requests, 1000, 'the upstream got each once')
  t.equal(connections(), 1, 'over one connection, kept alive')
})

t.test('an upstream status line Node cannot relay is a 502, not a crash', async (t) => {
  const { key, jwks } = await issuerAndEcho(t)
  let requests = 0
  const raw = net.createServer((socket) => {
    socket.once('data', () => {
      requests++
      socket.end('HTTP/1.1 700 Unheard Of\r\ncontent-length: 0\r\n\r\n')
    })
  })
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { raw.close() })
  const gw = await startGateway({
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { raw: { url: `http://127.0.0.1:${(raw.address() as AddressInfo).port}` } },
    routes: [{ id: 'weird', match: { path: '/api', prefix: true }, upstream: 'raw' }]
  })
  t.teardown(() => gw.close())
  const token = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice' })
  const socket = connect(gw, `GET /api/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)
  let text = ''
  socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1') })
  await once(socket, 'end')
  t.match(text, /^HTTP\/1\.1 502 /)
  t.match(text, '"error":"bad_gateway"')
  t.equal(requests, 1, 'asked once, not retried')
  t.match(gw.decisions().at(-1), { route: 'weird', status: 502, reason: 'upstream_refused', detail: 'raw: UPSTREAM_BAD_STATUS' })
})

t.test('a GET with a body the client framed: the upstream gets a well-framed GET, the connection stays in step', async (t) => {
  const { gw, token, handle } = await setUp(t)
  const seen: Array<{ method: string, length: string | undefined, body: string }> = []
  handle((req, res) => {
    let body = ''
    req.on('data', (chunk: Buffer) => { body += chunk.toString('latin1') })
    req.on('end', () => {
      seen.push({ method: req.method ?? '', length: req.headers['content-length'], body })
      res.end(`answer ${seen.length}`)
    })
  })
  // Two requests on one connection: if the body were left unread or sent half-framed, the second would be misread.
  const socket = connect(gw, `GET /api/one HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\nContent-Length: 5\r\n\r\nhello` +
    `GET /api/two HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)
  let text = ''
  socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1') })
  await once(socket, 'end')
  t.equal([...text.matchAll(/HTTP\/1\.1 200 /g)].length, 2, 'both answered 200')
  t.match(text, /answer 1[\s\S]*answer 2/)
  t.equal(seen.length, 2)
  t.same(seen[0], { method: 'GET', length: undefined, body: '' }, 'no body and no Content-Length: never a length without its bytes')
  t.same(seen[1], { method: 'GET', length: undefined, body: '' })
})
