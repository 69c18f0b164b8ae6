/**
 * A real upstream HTTP server that records every request it receives and answers according to a
 * mode the test sets.
 */
import { createHash } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export interface Received {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  /** as sent, so duplicates and case survive: [name, value, name, value, …] */
  rawHeaders: string[]
  body: string
  /** The body's length in bytes and its SHA-256 (hex): exact even for binary bodies. */
  bytes: number
  sha256: string
}

/**
 * - 'echo': 200 with JSON `{method, url, headers, rawHeaders, body}`
 * - 'hang': never answers (close() still ends the connection)
 * - 'reset': the socket is reset (TCP RST), the client sees ECONNRESET
 * - {delayMs}: echo after the delay
 * - {status}: echo body with that status
 * - 'digest': 200 with JSON `{bytes, sha256}` only, for large bodies
 */
export type EchoMode = 'echo' | 'hang' | 'reset' | 'digest' | { delayMs: number } | { status: number }

export interface Echo {
  /** http://127.0.0.1:PORT */
  url: string
  /** every request, in arrival order, recorded once its body has been read */
  received: Received[]
  setMode(mode: EchoMode): void
  close(): Promise<void>
}

export function listenLocal (server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

const closing = new WeakMap<http.Server, Promise<void>>()

/**
 * Closes a server for good: stops listening and destroys every socket, including those with a request
 * the server will never answer (server.close() alone would wait for them forever). Idempotent, so a
 * test may close early and still leave the close in its teardown.
 */
export function closeServer (server: http.Server, sockets: Set<Socket>): Promise<void> {
  let done = closing.get(server)
  if (!done) {
    done = new Promise((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()))
      for (const socket of sockets) socket.destroy()
      server.closeAllConnections()
    })
    closing.set(server, done)
  }
  return done
}

/** Tracks a server's sockets, for closeServer. */
export function trackSockets (server: http.Server): Set<Socket> {
  const sockets = new Set<Socket>()
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  return sockets
}

/** TCP RST rather than FIN, so the peer gets ECONNRESET instead of a clean end of stream. */
export function resetSocket (socket: Socket): void {
  if (socket.destroyed) return
  socket.resetAndDestroy()
}

export async function startEcho (): Promise<Echo> {
  let mode: EchoMode = 'echo'
  const received: Received[] = []
  const timers = new Set<NodeJS.Timeout>()

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('error', () => {}) // the client (the gateway under test) may abort mid-body
    req.on('end', () => {
      const record: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: '',
        bytes: 0,
        sha256: '',
      }
      const body = Buffer.concat(chunks)
      record.body = body.toString('utf8')
      record.bytes = body.length
      record.sha256 = createHash('sha256').update(body).digest('hex')
      received.push(record)

      const reply = (status: number): void => {
        if (res.destroyed) return
        const payload = JSON.stringify({
          method: record.method,
          url: record.url,
          headers: record.headers,
          rawHeaders: record.rawHeaders,
          body: record.body,
        })
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) })
        res.end(payload)
      }

      // The mode in force when the request completed decides, even if the test changes it meanwhile.
      const current = mode
      if (current === 'echo') reply(200)
      else if (current === 'digest') {
        const digest = JSON.stringify({ bytes: record.bytes, sha256: record.sha256 })
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(digest) })
        res.end(digest)
      } else if (current === 'hang') { /* never answer */ } else if (current === 'reset') resetSocket(req.socket)
      else if ('delayMs' in current) {
        const timer = setTimeout(() => {
          timers.delete(timer)
          reply(200)
        }, current.delayMs)
        timers.add(timer)
      } else reply(current.status)
    })
  })
  const sockets = trackSockets(server)
  const port = await listenLocal(server)

  return {
    url: `http://127.0.0.1:${port}`,
    received,
    setMode (next) {
      mode = next
    },
    close () {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      return closeServer(server, sockets)
    },
  }
}

/** A URL on 127.0.0.1 where nothing listens (connections are refused). */
export async function closedPort (): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`
}

/** Ports this process has handed out: the kernel may give a just-closed port again at once. */
const handedOut = new Set<number>()

/**
 * A loopback port nothing listens on right now: listen on 0, note the port, close. Never one handed out
 * before in this process, so `[await freePort(), await freePort()]` are two different ports (two calls
 * once drew the same one, and a gateway's admin listener found its proxy listener on it).
 */
export async function freePort (): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const server = http.createServer()
    const port = await listenLocal(server)
    await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())))
    if (!handedOut.has(port)) {
      handedOut.add(port)
      return port
    }
  }
  throw new Error('no loopback port that was not handed out before, in 20 tries')
}
