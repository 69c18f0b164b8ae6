/**
 * Streams an allowed request to an HTTP/1.1 upstream (every upstream but `http2: true` ones, which
 * `h2-forward.ts` serves) over undici's low-level `dispatch`: one pool of keep-alive connections per
 * origin, the request body streamed as it arrives, the upstream's answer written straight to the client's
 * response. A general proxy library wraps the answer in a stream, copies its headers twice and runs
 * Fastify's send path on it; none of that changes what the client receives, and it was most of what a
 * forwarded request cost (bench/RESULTS.md, "The proxy's own HTTP/1.1 forwarder").
 *
 * What the upstream receives is `proxied-headers.ts`'s set (docs/proxying.md); what the client receives is
 * the upstream's status and headers without the hop-by-hop ones, framed by Node: `Content-Length` when the
 * upstream sent one, chunked otherwise. Bodies stream both ways with backpressure: a slow client pauses
 * the upstream's socket, a slow upstream pauses the client's. A request is never re-sent. Before the
 * answer began, a failure is the usual 502 or 504 (`upstreamError`); after, the client's connection is
 * destroyed, so a truncated body never looks complete. The client leaving aborts the upstream request.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'
import { Readable } from 'node:stream'
import { Agent, type Dispatcher } from 'undici'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CompiledRoute } from '../config/types.js'
import type { Allow } from '../decision/decide.js'
import type { Engine } from '../decision/engine.js'
import { upstreamConnector } from '../upstream/connector.js'
import { upstreamAt } from '../upstream/upstream-at.js'
import { proxiedHeaders } from './proxied-headers.js'
import { withoutPseudo } from './h2-forward.js'

/** Connections per upstream origin, and one request at a time on each (no pipelining: a slow answer blocks nothing behind it). */
const CONNECTIONS_PER_ORIGIN = 128

export interface H1ForwardOptions {
  engine: () => Engine
  /** A failure before the response began: answered as a 502, a 504 or the body's own refusal. */
  fail: (reply: FastifyReply, error: Error) => void
  /** The upstream's response headers as the client receives them (hop-by-hop removed, CORS applied). */
  responseHeaders: (route: CompiledRoute, headers: IncomingHttpHeaders, request: FastifyRequest) => IncomingHttpHeaders
}

type ClientResponse = ServerResponse | Http2ServerResponse

/** The error an upstream answer gets when its status line cannot be relayed (a status Node will not write). */
function badStatus (status: number): Error {
  return Object.assign(new Error(`the upstream answered status ${status}`), { code: 'UPSTREAM_BAD_STATUS', statusCode: 502 })
}

/** The error the client's departure aborts the upstream request with: nobody reads it, the log names no failure. */
const CLIENT_GONE = Object.freeze(Object.assign(new Error('the client closed the connection'), { code: 'CLIENT_GONE' }))

/** Whether a header set has any field (undici hands an empty object when there are no trailers). */
function hasFields (headers: IncomingHttpHeaders): boolean {
  for (const name in headers) if (headers[name] !== undefined) return true
  return false
}

/**
 * One forwarded request: undici's handler for its exchange with the upstream. A class rather than
 * closures: one object per request, its methods shared.
 */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null
  /** The upstream's status and headers were written to the client (or the failure was answered). */
  private responded = false
  private readonly response: ClientResponse

  constructor (private readonly options: H1ForwardOptions, private readonly request: FastifyRequest,
    private readonly reply: FastifyReply, private readonly route: CompiledRoute) {
    this.response = reply.raw
    this.response.on('close', this.clientClosed)
  }

  /** The client's response closed: before it finished, the client went away, and the upstream request goes too. */
  private readonly clientClosed = (): void => {
    if (!this.response.writableFinished) this.controller?.abort(CLIENT_GONE)
  }

  private readonly drained = (): void => { this.controller?.resume() }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.controller = controller
    // Gone while the request waited for a free connection: never send it.
    if (this.response.destroyed) controller.abort(CLIENT_GONE)
  }

  onResponseStart (controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    // An interim answer (`102 Processing`, `103 Early Hints`) is the upstream's to its own client: the final one follows.
    if (status < 200 || this.responded) return
    if (status > 599) {
      controller.abort(badStatus(status))
      return
    }
    const raw = this.request.raw
    const out = this.options.responseHeaders(this.route, headers, this.request)
    // Node frames the client's response itself; the upstream's framing of its own connection does not apply.
    if (out['transfer-encoding'] !== undefined) delete out['transfer-encoding']
    // A 204 has no body, so no content fields (RFC 9110 §8.6), as Fastify writes one.
    if (status === 204) {
      delete out['content-type']
      delete out['content-length']
    }
    // Fields HTTP/2 forbids (RFC 9113 §8.2.2) that the hop-by-hop list above does not cover.
    if (raw.httpVersionMajor === 2) {
      delete out['http2-settings']
      delete out.host
    } else if (!raw.complete) {
      // The client's body was not read to its end: the connection cannot carry another request.
      out.connection = 'close'
    }
    try {
      this.response.writeHead(status, out as OutgoingHttpHeaders)
    } catch (err) {
      // A header Node refuses to write (the upstream's, not the client's fault): nothing has been sent yet.
      controller.abort(Object.assign(badStatus(status), { message: (err as Error).message }))
      return
    }
    this.responded = true
    this.reply.hijack()
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    // The client reads slower than the upstream writes: stop reading the upstream until the client drains.
    if (!(this.response as ServerResponse).write(chunk) && !controller.paused) {
      controller.pause()
      this.response.once('drain', this.drained)
    }
  }

  onResponseEnd (_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (!this.responded) return
    // Sent only on a chunked response (Node drops them otherwise), as the upstream's were.
    if (hasFields(trailers)) this.response.addTrailers(trailers as Record<string, string>)
    this.response.end()
  }

  onResponseError (_controller: Dispatcher.DispatchController, error: Error): void {
    this.failed(error)
  }

  /** The exchange failed, before or after the answer began. */
  failed (error: Error): void {
    this.response.off('close', this.clientClosed)
    if (error === CLIENT_GONE) return
    if (!this.responded) {
      this.responded = true
      this.options.fail(this.reply, error)
    } else if (!this.response.writableFinished) {
      // The answer was cut off: destroy rather than end, so the client cannot take a truncated body for a whole one.
      this.response.destroy()
    }
  }
}

/**
 * The HTTP/1.1 forwarder: its connection pools, and `forward` for each allowed request.
 */
export class H1Forwarder {
  private readonly agent: Agent

  constructor (private readonly options: H1ForwardOptions) {
    const { engine } = options
    // Each connection is opened with its upstream's TLS options, verified unless the config says otherwise (docs/tls.md).
    const connect = upstreamConnector((origin) => upstreamAt(engine().config, origin)?.tls ?? null)
    this.agent = new Agent({ connections: CONNECTIONS_PER_ORIGIN, pipelining: 1, connect })
  }

  /** Forwards an allowed request to its route's upstream at `path` (normalized, joined to the base path) and the decision's query. */
  forward (request: FastifyRequest, reply: FastifyReply, decision: Allow, path: string): void {
    const { route } = decision
    const raw = request.raw
    const exchange = new Exchange(this.options, request, reply, route)
    try {
      const config = (request.engine ?? this.options.engine()).config
      const own = proxiedHeaders(raw, raw.httpVersionMajor === 2 ? withoutPseudo(raw.headers) : raw.headers, config, decision, request.reissued)
      // With tracing on, the upstream's traceparent names the upstream call's span (docs/observability.md#propagation).
      const headers = request.trace == null ? own : request.trace.upstreamHeaders(own, decision)
      const timeoutMs = route.upstream.timeoutMs
      this.agent.dispatch({
        origin: route.upstream.origin,
        // A bare `?` carries no query: the upstream gets the path alone.
        path: decision.query.length > 1 ? path + decision.query : path,
        method: raw.method ?? 'GET',
        headers,
        // The body as Fastify's parser hands it (a form body passes through its token scan); none without one.
        body: request.body instanceof Readable ? request.body : null,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs
      }, exchange)
    } catch (err) {
      // A request undici refuses to send (a header value it will not write): answered before anything left.
      exchange.failed(err as Error)
    }
  }

  /** Closes every upstream connection; requests in flight finish first. */
  async close (): Promise<void> {
    await this.agent.close()
  }
}
