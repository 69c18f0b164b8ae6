/**
 * The bounded JSON fetch against a real local HTTP server: redirects are not followed, the byte limit is
 * enforced while reading (an endless body is cut off), the deadline covers headers and body, and every
 * failure says which limit or fault it was.
 */
import http from 'node:http'
import t from 'tap'
import { fetchJson, FetchJsonError } from '../../src/keys/fetch-json.js'
import { closedPort, closeServer, listenLocal, trackSockets } from '../helpers/echo-upstream.js'
import { rejection } from '../helpers/denial.js'

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void

const routes = new Map<string, Handler>()
const hits = new Map<string, number>()
const server = http.createServer((req, res) => {
  const path = req.url ?? ''
  hits.set(path, (hits.get(path) ?? 0) + 1)
  const handler = routes.get(path)
  if (handler === undefined) res.writeHead(404).end()
  else handler(req, res)
})
const sockets = trackSockets(server)
const base = `http://127.0.0.1:${await listenLocal(server)}`
t.teardown(() => closeServer(server, sockets))

// A generous deadline for the cases that must answer (a loaded CI machine is slow); the deadline cases set a short one.
const LIMITS = { timeoutMs: 5000, maxBytes: 64 * 1024 }
const SHORT = { ...LIMITS, timeoutMs: 300 }

const failure = (p: Promise<unknown>): Promise<FetchJsonError> => rejection(p, FetchJsonError)

t.test('a JSON body is parsed; the request asks for JSON', async (t) => {
  let accept: string | undefined
  routes.set('/ok', (req, res) => {
    accept = req.headers.accept
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[]}')
  })
  t.same(await fetchJson(`${base}/ok`, LIMITS), { keys: [] })
  t.match(accept, /application\/json/)
})

t.test('redirects are not followed', async (t) => {
  for (const status of [301, 302, 303, 307, 308]) {
    routes.set(`/moved-${status}`, (_req, res) => res.writeHead(status, { location: `${base}/target` }).end())
    const err = await failure(fetchJson(`${base}/moved-${status}`, LIMITS))
    t.match(err, { kind: 'redirect', message: new RegExp(`answered ${status}; redirects are not followed`) })
  }
  t.equal(hits.get('/target'), undefined, 'the redirect target was never requested')
})

t.test('a declared oversized body is refused before reading', async (t) => {
  routes.set('/big-declared', (_req, res) => {
    const body = Buffer.alloc(LIMITS.maxBytes + 1, 0x20)
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body)
  })
  const err = await failure(fetchJson(`${base}/big-declared`, LIMITS))
  t.match(err, { kind: 'too_large', message: `body of ${LIMITS.maxBytes + 1} bytes exceeds maxBytes ${LIMITS.maxBytes}` })
})

t.test('an endless undeclared body is cut off at maxBytes: reading stops, the connection is closed', async (t) => {
  let written = 0
  let closed = false
  routes.set('/endless', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }) // chunked: no content-length
    const chunk = Buffer.alloc(16 * 1024, 0x20)
    res.on('close', () => { closed = true })
    const pump = (): void => {
      // eslint-disable-next-line no-unmodified-loop-condition -- set by the response's close event
      while (!closed && written < 512 * 1024 * 1024) {
        written += chunk.length
        if (!res.write(chunk)) { res.once('drain', pump); return }
      }
    }
    pump()
  })
  const err = await failure(fetchJson(`${base}/endless`, LIMITS))
  t.match(err, { kind: 'too_large', message: `body exceeds maxBytes ${LIMITS.maxBytes}` })
  const deadline = Date.now() + 2000
  // eslint-disable-next-line no-unmodified-loop-condition -- set by the response's close event
  while (!closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  t.ok(closed, 'the gateway closed the connection')
  t.ok(written < 64 * 1024 * 1024, `the server could push only ${Math.round(written / 1024)} KiB (socket buffers), not the 512 MiB it wanted`)
})

t.test('the deadline covers a server that never answers', async (t) => {
  routes.set('/hang', () => {})
  const began = Date.now()
  const err = await failure(fetchJson(`${base}/hang`, SHORT))
  t.match(err, { kind: 'timeout', message: 'no complete answer within 300 ms' })
  t.ok(Date.now() - began < 2000, 'gave up near the deadline')
})

t.test('the deadline covers a body that trickles', async (t) => {
  routes.set('/trickle', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write('{"keys":[')
    const timer = setInterval(() => res.write(' '), 50)
    res.on('close', () => clearInterval(timer))
  })
  const err = await failure(fetchJson(`${base}/trickle`, SHORT))
  t.equal(err.kind, 'timeout')
})

t.test('bodies that are not JSON say what came back', async (t) => {
  routes.set('/html', (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!DOCTYPE html>\n<html><title>Captive portal</title></html>'))
  routes.set('/garbage', (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(Buffer.from([0x00, 0xff, 0x7b, 0x7b, 0x01])))
  routes.set('/empty', (_req, res) => res.writeHead(200).end())
  t.match(await failure(fetchJson(`${base}/html`, LIMITS)),
    { kind: 'not_json', message: 'body is not JSON (text/html, 58 bytes, starts "<!DOCTYPE html> <html><title>Captive portal</title></html>")' })
  t.match(await failure(fetchJson(`${base}/garbage`, LIMITS)), { kind: 'not_json', message: /^body is not JSON \(application\/json, 5 bytes, starts "\{\{"\)$/ })
  t.match(await failure(fetchJson(`${base}/empty`, LIMITS)), { kind: 'not_json', message: /no content-type, 0 bytes/ })
})

t.test('a status other than 200 is a failure', async (t) => {
  routes.set('/503', (_req, res) => res.writeHead(503, { 'content-type': 'text/plain' }).end('maintenance'))
  routes.set('/204', (_req, res) => res.writeHead(204).end())
  t.match(await failure(fetchJson(`${base}/503`, LIMITS)), { kind: 'status', message: 'answered HTTP 503' })
  t.match(await failure(fetchJson(`${base}/204`, LIMITS)), { kind: 'status', message: 'answered HTTP 204' })
})

t.test('a refused connection is a network failure naming the cause', async (t) => {
  const url = await closedPort()
  t.match(await failure(fetchJson(`${url}/jwks`, LIMITS)), { kind: 'network', message: /ECONNREFUSED/ })
})
