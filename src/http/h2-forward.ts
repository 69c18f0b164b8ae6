/**
 * Streams an allowed request to an `http2: true` upstream over a shared HTTP/2 session
 * (`upstream/h2-sessions.ts`), for gRPC above all (docs/grpc.md). A general proxy library's HTTP/2 mode does
 * not fit: @fastify/reply-from's, for one, takes one origin per plugin, checks no certificate by default
 * and drops the upstream's trailers, where a gRPC call's status travels in them.
 *
 * The request carries the same headers as one forwarded over HTTP/1.1 (`proxied-headers.ts`: client
 * copies of identity headers stripped, identity and forwarding headers set), without the connection-level
 * ones HTTP/2 forbids; `te: trailers` is kept, since gRPC servers require it. Bodies stream both ways,
 * with backpressure, so client-, server- and bidi-streaming calls work. The upstream's trailers become the
 * response's trailers; a trailers-only answer (a gRPC error) stays one. A reset either way is passed on:
 * the client leaving cancels the upstream stream, an upstream reset after the response began resets the
 * client's stream. Before the response began, a failure is the usual 502 or 504 (for gRPC, UNAVAILABLE).
 */
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders as H2Headers, type OutgoingHttpHeaders } from 'node:http2'
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'
import { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CompiledRoute } from '../config/types.js'
import type { Allow } from '../decision/decide.js'
import type { Engine } from '../decision/engine.js'
import type { H2Sessions } from '../upstream/h2-sessions.js'
import { proxiedHeaders } from './proxied-headers.js'

const { HTTP2_HEADER_STATUS, NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_FLAG_END_STREAM } = constants

/** Connection-level headers RFC 9113 §8.2.2 forbids in HTTP/2 (Node refuses to send them), and Host, which becomes `:authority`. */
const NOT_ON_H2: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings', 'te'])

export interface H2ForwardOptions {
  sessions: H2Sessions
  engine: () => Engine
  /** A failure before the response began: answered as the HTTP/1.1 forwarder's are (502, 504, a body refusal). */
  fail: (reply: FastifyReply, error: Error) => void
  /** The upstream's response headers as the client receives them (hop-by-hop removed, CORS applied). */
  responseHeaders: (route: CompiledRoute, headers: IncomingHttpHeaders, request: FastifyRequest) => IncomingHttpHeaders
}

/** A header set without HTTP/2 pseudo-headers (`:path`, `:status`…); also what an HTTP/2 client's request sends an HTTP/1.1 upstream. */
export function withoutPseudo (headers: IncomingHttpHeaders | H2Headers): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {}
  for (const name in headers) if (name.charCodeAt(0) !== 0x3a) out[name] = headers[name] as string | string[] | undefined
  return out
}

/** The HTTP/2 request headers: pseudo-headers first, then the proxied headers HTTP/2 allows. */
function requestHeaders (request: FastifyRequest, config: Engine['config'], decision: Allow, target: string): OutgoingHttpHeaders {
  const raw = request.raw
  const own = proxiedHeaders(raw, withoutPseudo(raw.headers), config, decision, request.reissued)
  // With tracing on, the upstream's traceparent names the upstream call's span (docs/observability.md#propagation).
  const proxied = request.trace == null ? own : request.trace.upstreamHeaders(own, decision)
  const upstream = decision.route.upstream
  const out: OutgoingHttpHeaders = {
    ':method': raw.method ?? 'GET',
    ':scheme': upstream.origin.startsWith('https:') ? 'https' : 'http',
    ':authority': proxied.host ?? upstream.host,
    ':path': target
  }
  for (const name in proxied) if (!NOT_ON_H2.has(name)) out[name] = proxied[name]
  // The one value of TE HTTP/2 allows, and the one gRPC servers require.
  const te = raw.headers.te
  if (typeof te === 'string' && te.trim().toLowerCase() === 'trailers') out.te = 'trailers'
  return out
}

/** Resets the client's side: its HTTP/2 stream with the upstream's code, or its HTTP/1.1 connection. */
function resetClient (response: ServerResponse | Http2ServerResponse, code: number): void {
  if ('stream' in response) response.stream.close(code === NGHTTP2_NO_ERROR ? NGHTTP2_CANCEL : code)
  else response.destroy()
}

/** Relays the upstream's response: head, body with backpressure, then its trailers. */
function relay (reply: FastifyReply, stream: ClientHttp2Stream, status: number, headers: IncomingHttpHeaders, endStream: boolean): void {
  reply.hijack()
  const response = reply.raw
  if (endStream) {
    // Trailers-only (a gRPC error): set, not written, so the end sends them as one HEADERS frame that ends the stream.
    response.statusCode = status
    for (const name in headers) response.setHeader(name, headers[name] as string | string[])
    response.end()
    return
  }
  response.writeHead(status, headers)
  stream.on('trailers', (trailers: H2Headers) => { response.addTrailers(withoutPseudo(trailers) as Record<string, string>) })
  stream.pipe(response)
}

/**
 * Forwards an allowed request to its route's HTTP/2 upstream at `target` (the normalized path and query).
 */
export function forwardH2 (options: H2ForwardOptions, request: FastifyRequest, reply: FastifyReply, decision: Allow, target: string): void {
  const { route } = decision
  const raw = request.raw
  let stream: ClientHttp2Stream
  try {
    const headers = requestHeaders(request, (request.engine ?? options.engine()).config, decision, target)
    stream = options.sessions.session(route.upstream).request(headers)
  } catch (err) {
    options.fail(reply, err as Error)
    return
  }
  let responded = false
  const fail = (err: Error): void => {
    if (responded) return
    responded = true
    stream.close(NGHTTP2_CANCEL)
    options.fail(reply, err)
  }
  stream.setTimeout(route.upstream.timeoutMs, () => {
    if (!responded) fail(Object.assign(new Error('the upstream did not answer in time'), { code: 'UPSTREAM_TIMEOUT', statusCode: 504 }))
    else {
      stream.close(NGHTTP2_CANCEL)
      resetClient(reply.raw, NGHTTP2_CANCEL)
    }
  })
  stream.on('error', fail)
  stream.on('close', () => {
    if (!responded) fail(Object.assign(new Error('the upstream reset the stream'), { code: 'ECONNRESET' }))
    else if (stream.rstCode !== NGHTTP2_NO_ERROR && !reply.raw.writableFinished) resetClient(reply.raw, stream.rstCode ?? NGHTTP2_CANCEL)
  })
  stream.on('response', (headers: H2Headers, flags: number) => {
    if (responded) return
    responded = true
    const status = Number(headers[HTTP2_HEADER_STATUS])
    const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0
    relay(reply, stream, status, options.responseHeaders(route, withoutPseudo(headers), request), endStream)
  })
  // The client leaving before the end cancels the upstream call.
  reply.raw.on('close', () => { if (!stream.closed) stream.close(NGHTTP2_CANCEL) })

  // The body as Fastify's parser hands it (a form body passes through its token scan), else the request itself.
  const body = request.body instanceof Readable ? request.body : raw
  body.on('error', (err: Error) => {
    if (!responded) fail(err)
    else stream.close(NGHTTP2_CANCEL)
  })
  body.pipe(stream)
}
