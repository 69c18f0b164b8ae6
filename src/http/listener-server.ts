/**
 * The Node server under a listener's Fastify app, when it is not Fastify's default plaintext HTTP/1.1 one
 * (docs/tls.md): HTTPS; HTTP/2 over TLS by ALPN with HTTP/1.1 on the same port; or h2c by prior knowledge
 * beside HTTP/1.1 on one plaintext port, told apart by the connection preface
 * (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, RFC 9113 §3.4), which no HTTP/1.1 request can start with.
 *
 * Fastify is not told it serves HTTP/2 (its `http2` option only changes which server it builds, and its
 * typings): every request, HTTP/1.1 or HTTP/2, reaches the same handler, and what differs per request
 * is read from `httpVersionMajor`, as Fastify does itself. The server keeps the
 * interface the rest of scopegate uses: `checkContinue`, `upgrade` and `clientError` events for HTTP/1.1
 * requests, and `closeIdleConnections` / `closeAllConnections` for draining (`drain.ts`), which also
 * close HTTP/2 sessions (gracefully: GOAWAY, the streams under way finish).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import http2, { type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2'
import https from 'node:https'
import type { Socket } from 'node:net'
import type { SecureContextOptions, TlsOptions } from 'node:tls'
import type { FastifyServerFactory, FastifyServerOptions } from 'fastify'
import type { CompiledListener, CompiledTls } from '../config/types.js'
import type { TlsMaterial } from '../net/tls-material.js'

/** The HTTP/2 connection preface a client sends first (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
/** Milliseconds of HTTP/2 session idleness before it is closed, as Fastify's own default. */
const SESSION_IDLE_MS = 72_000

/** The listener's Node server, whatever it really is: Fastify and the gateway use it as an HTTP/1.1 one. */
type Handler = (request: IncomingMessage, response: ServerResponse) => void
/** The same handler, as an HTTP/2 server is given it: Fastify's handler reads both request kinds. */
type Http2Handler = (request: Http2ServerRequest, response: Http2ServerResponse) => void
const forHttp2 = (handler: Handler): Http2Handler => handler as unknown as Http2Handler

/** A server that can change its certificate without a restart (every TLS server here). */
export interface CertificateHolder {
  setSecureContext: (options: SecureContextOptions) => void
}

/** The certificate, key and client CA, as a secure context takes them. */
export function secureContextOptions (material: TlsMaterial): SecureContextOptions {
  return { cert: material.cert, key: material.key, ca: material.ca }
}

/** TLS server options: what `secureContextOptions` holds, and what is fixed for the listener's life. */
function tlsServerOptions (tls: CompiledTls, material: TlsMaterial): TlsOptions {
  return {
    ...secureContextOptions(material),
    minVersion: tls.minVersion,
    // `request`: a certificate is asked for and checked, the handshake goes on without a good one, and
    // only a verified one is given to the decision (`client-certificate.ts`).
    requestCert: tls.clientCertificate !== 'none',
    rejectUnauthorized: tls.clientCertificate === 'require'
  }
}

/** Fastify's HTTP/1.1 settings on a server it did not build (what its own factory would set). */
function asFastifyWould<T extends http.Server> (server: T, options: FastifyServerOptions): T {
  server.keepAliveTimeout = options.keepAliveTimeout ?? 72_000
  server.requestTimeout = options.requestTimeout ?? 0
  server.setTimeout(options.connectionTimeout ?? 0)
  return server
}

/**
 * An HTTP/2 `CONNECT` names an authority and no path: scopegate tunnels nothing, so it goes to the same
 * handler as any request, with the asterisk as its path, and no route takes it (404 `no_route`, with a
 * decision line). Without a listener Node would answer a bare 405; with no path the router would throw.
 */
function refuseConnect (server: http2.Http2Server | http2.Http2SecureServer, handler: Handler): void {
  server.on('connect', (request: Http2ServerRequest, response: Http2ServerResponse) => {
    request.url = '*'
    forHttp2(handler)(request, response)
  })
}

/** Tracks HTTP/2 sessions, so draining can close them: idle at once, busy ones after their streams. */
function trackSessions (server: http2.Http2Server | http2.Http2SecureServer): Set<Http2Session> {
  const sessions = new Set<Http2Session>()
  server.on('session', (session: Http2Session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
    session.setTimeout(SESSION_IDLE_MS, () => { session.close() })
  })
  return sessions
}

/**
 * Gives an HTTP/2 server the draining methods of an HTTP/1.1 one. `http1` is what holds its HTTP/1.1
 * connections: the server itself (allowHTTP1, which tracks them as `http.Server` does) or a hidden one.
 */
function drainable (server: http2.Http2Server | http2.Http2SecureServer, sessions: Set<Http2Session>, http1: object): void {
  Object.assign(server, {
    closeIdleConnections: () => {
      http.Server.prototype.closeIdleConnections.call(http1)
      for (const session of sessions) session.close()
    },
    closeAllConnections: () => {
      http.Server.prototype.closeAllConnections.call(http1)
      for (const session of sessions) session.destroy()
    }
  })
}

/** HTTP/2 over TLS by ALPN, HTTP/1.1 on the same port (`allowHTTP1`). */
function secureHttp2 (handler: Handler, options: FastifyServerOptions, tls: TlsOptions, maxHeaderSize: number): http2.Http2SecureServer {
  const server = http2.createSecureServer({ ...tls, allowHTTP1: true, settings: { maxHeaderListSize: maxHeaderSize } }, forHttp2(handler))
  // Read by Node's HTTP/1.1 parser for the allowHTTP1 connections, as on an http.Server.
  Object.assign(server, { maxHeaderSize, requestTimeout: options.requestTimeout ?? 0, keepAliveTimeout: options.keepAliveTimeout ?? 72_000 })
  drainable(server, trackSessions(server), server)
  refuseConnect(server, handler)
  return server
}

/** Calls `then(true)` for a connection that opens with the HTTP/2 preface, `then(false)` for any other; the bytes read are put back. */
function sniffPreface (socket: Socket, timeoutMs: number, then: (http2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0)
  // A client that sends nothing is not kept: the same bound as for a request's headers.
  const timer = setTimeout(() => { socket.destroy() }, timeoutMs)
  const stop = (): void => {
    clearTimeout(timer)
    socket.removeListener('data', onData)
    socket.removeListener('close', stop)
  }
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk])
    const length = Math.min(seen.length, PREFACE.length)
    const isPreface = seen.subarray(0, length).equals(PREFACE.subarray(0, length))
    if (isPreface && length < PREFACE.length) return
    stop()
    socket.pause()
    socket.unshift(seen)
    then(isPreface)
  }
  socket.on('data', onData)
  socket.once('close', stop)
}

/** Re-emits an HTTP/1.1 server's per-request events on `to`, where Fastify and the gateway listen. */
function relayEvents (from: http.Server, to: http2.Http2Server): void {
  for (const event of ['checkContinue', 'checkExpectation', 'upgrade', 'clientError']) {
    from.on(event, (...args: unknown[]) => to.emit(event, ...args))
  }
}

/** h2c by prior knowledge and HTTP/1.1 on one plaintext port: the preface decides which server a connection goes to. */
function cleartextHttp2 (handler: Handler, options: FastifyServerOptions, http1Options: http.ServerOptions): http2.Http2Server {
  const maxHeaderSize = http1Options.maxHeaderSize ?? 16384
  const server = http2.createServer({ settings: { maxHeaderListSize: maxHeaderSize } }, forHttp2(handler))
  const http1 = asFastifyWould(http.createServer(http1Options, handler), options)
  relayEvents(http1, server)
  // Never listens: 'listening' starts its connection bookkeeping (request timeouts, idle connections).
  http1.emit('listening')
  server.once('close', () => { http1.close() })
  const http2Listeners = server.listeners('connection') as Array<(socket: Socket) => void>
  server.removeAllListeners('connection')
  const sniffMs = Math.min(options.requestTimeout ?? 30_000, 30_000) || 30_000
  server.on('connection', (socket: Socket) => {
    sniffPreface(socket, sniffMs, (isHttp2) => {
      if (isHttp2) for (const listener of http2Listeners) listener.call(server, socket)
      else {
        http1.emit('connection', socket)
        // Paused by the sniffing: the HTTP/1.1 server reads the bytes put back, then the rest, once it flows.
        socket.resume()
      }
    })
  })
  drainable(server, trackSessions(server), http1)
  refuseConnect(server, handler)
  return server
}

/** What the gateway needs to open a listener: Fastify's server factory (none: its default) and the TLS server. */
export interface ListenerServer {
  serverFactory: FastifyServerFactory | undefined
  /** The TLS server once Fastify has built it, to swap certificates on; null for a plaintext listener. */
  certificates: () => CertificateHolder | null
}

/**
 * The server factory for a listener. `material` is the listener's TLS files as read at start-up (null for
 * plaintext); `http1Options` are the options Fastify is given as `http` (its `maxHeaderSize` also bounds
 * HTTP/2 header lists).
 */
export function listenerServer (listener: CompiledListener, material: TlsMaterial | null, http1Options: http.ServerOptions): ListenerServer {
  const maxHeaderSize = http1Options.maxHeaderSize ?? 16384
  let built: CertificateHolder | null = null
  const certificates = (): CertificateHolder | null => built
  const { tls } = listener
  if (tls === null || material === null) {
    if (!listener.http2) return { serverFactory: undefined, certificates }
    const serverFactory: FastifyServerFactory = (handler, options) =>
      cleartextHttp2(handler, options, http1Options) as unknown as http.Server
    return { serverFactory, certificates }
  }
  const serverOptions = tlsServerOptions(tls, material)
  const serverFactory: FastifyServerFactory = (handler, options) => {
    if (listener.http2) {
      const server = secureHttp2(handler, options, serverOptions, maxHeaderSize)
      built = server
      return server as unknown as http.Server
    }
    const server = asFastifyWould(https.createServer({ ...http1Options, ...serverOptions }, handler), options)
    built = server
    return server
  }
  return { serverFactory, certificates }
}
