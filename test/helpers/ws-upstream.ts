/**
 * A real WebSocket upstream for end-to-end tests (the `ws` package on 127.0.0.1 port 0): it records each
 * handshake it accepts and how each connection closed, echoes every message with its type, and can
 * be told to refuse handshakes with a plain HTTP answer or to close a connection itself. Also a client
 * helper that resolves with the open socket or with the HTTP response that refused it.
 */
import http from 'node:http'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { closeServer, listenLocal, trackSockets } from './echo-upstream.js'
import { readResponse } from './http.js'

export interface Handshake {
  url: string
  headers: http.IncomingHttpHeaders
  rawHeaders: string[]
}

export interface UpstreamClose { code: number, reason: string }

export interface WsUpstream {
  /** http://127.0.0.1:PORT */
  url: string
  /** Every handshake request that reached the server, accepted or refused. */
  handshakes: Handshake[]
  /** The open server-side sockets, in the order accepted. */
  sockets: WebSocket[]
  /** How each server-side socket closed, in the order they closed. */
  closes: UpstreamClose[]
  /** Refuse handshakes with this HTTP status (null: accept). */
  refuseWith: number | null
  /** Resolves with the next close seen by the upstream. */
  nextClose: () => Promise<UpstreamClose>
  close: () => Promise<void>
}

export async function startWsUpstream (): Promise<WsUpstream> {
  const server = http.createServer((_req, res) => { res.writeHead(404).end() })
  const sockets = trackSockets(server)
  const waiting: Array<(close: UpstreamClose) => void> = []
  const upstream: WsUpstream = {
    url: '',
    handshakes: [],
    sockets: [],
    closes: [],
    refuseWith: null,
    nextClose: () => new Promise((resolve) => { waiting.push(resolve) }),
    close: async () => {
      wss.close()
      await closeServer(server, sockets)
    }
  }
  const wss = new WebSocketServer({
    server,
    // No compression: frames are what the test sent, so sizes and backpressure are what they seem.
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
    verifyClient: (info: { req: http.IncomingMessage }, done: (ok: boolean, status?: number, message?: string) => void) => {
      upstream.handshakes.push({ url: info.req.url ?? '', headers: info.req.headers, rawHeaders: info.req.rawHeaders })
      if (upstream.refuseWith === null) done(true)
      else done(false, upstream.refuseWith, 'refused by the upstream')
    },
    handleProtocols: (protocols) => protocols.values().next().value ?? false
  })
  wss.on('connection', (socket) => {
    upstream.sockets.push(socket)
    socket.on('message', (data: RawData, isBinary: boolean) => { socket.send(data, { binary: isBinary }) })
    socket.on('close', (code, reason) => {
      const close = { code, reason: reason.toString('utf8') }
      upstream.closes.push(close)
      for (const resolve of waiting.splice(0)) resolve(close)
    })
    socket.on('error', () => {})
  })
  const port = await listenLocal(server)
  upstream.url = `http://127.0.0.1:${port}`
  return upstream
}

export type Opened =
  | { open: true, socket: WebSocket, protocol: string, upgradeHeaders: http.IncomingHttpHeaders }
  | { open: false, status: number, headers: http.IncomingHttpHeaders, body: string, json: any }

/** Opens a WebSocket through the gateway; resolves with it, or with the HTTP answer that refused it. */
export function openWs (url: string, options: { protocols?: string[], headers?: Record<string, string> } = {}): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, options.protocols ?? [], { headers: options.headers, perMessageDeflate: false, handshakeTimeout: 10_000, maxPayload: 64 * 1024 * 1024 })
    let upgradeHeaders: http.IncomingHttpHeaders = {}
    socket.on('upgrade', (res) => { upgradeHeaders = res.headers })
    socket.on('open', () => { resolve({ open: true, socket, protocol: socket.protocol, upgradeHeaders }) })
    socket.on('unexpected-response', (_req, res) => {
      readResponse(res).then((answer) => {
        resolve({ open: false, ...answer })
        socket.terminate()
      }, reject)
    })
    socket.on('error', reject)
  })
}

/** The next message on a socket, with its type. */
export function nextMessage (socket: WebSocket): Promise<{ data: Buffer, isBinary: boolean }> {
  return new Promise((resolve) => {
    socket.once('message', (data: RawData, isBinary: boolean) => {
      resolve({ data: Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer), isBinary })
    })
  })
}

/** Resolves with the code and reason a socket closed with. */
export function closed (socket: WebSocket): Promise<{ code: number, reason: string, at: number }> {
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve({ code: 1006, reason: '', at: Date.now() })
  return new Promise((resolve) => {
    socket.once('close', (code: number, reason: Buffer) => { resolve({ code, reason: reason.toString('utf8'), at: Date.now() }) })
  })
}
