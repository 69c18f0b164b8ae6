/**
 * The spans of one request (docs/observability.md#spans): the server span the request is answered under,
 * the decision inside it, the token verification inside the decision when a token is verified afresh, and
 * the upstream call beside the decision, whose span the upstream's `traceparent` names.
 *
 * What a span may carry is fixed here and nowhere else: route, decision, reason code, status, how the token
 * was judged, issuer id and client id. Never the token, an Authorization value, the subject, other claims,
 * a denial's log-only detail or the query string: a trace backend is read by more people, and kept longer,
 * than the decision log, which holds the subject (`trace_id` joins the two).
 *
 * Loaded only when tracing is on (see `tracing.ts`): with tracing off no object of this module exists.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapSetter, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api'
import type { W3CTraceContextPropagator } from '@opentelemetry/core'
import type { CompiledRoute } from '../config/types.js'
import type { Allow, Decision } from '../decision/decide.js'
import { joinUpstreamPath } from '../request/normalize-path.js'
import type { GatewayError } from '../shared/errors.js'

/** What every request's spans are made with: one per process (see `Tracing`). */
export interface TraceKit {
  tracer: Tracer
  propagator: W3CTraceContextPropagator
  /**
   * The verification whose synchronous part is running, if any: the key store and the introspection
   * client start their fetch in that same turn, so the fetch's span is its child. A slot rather than an
   * `AsyncLocalStorage`: on Node 20 and 22 the first `run` turns on promise hooks for the whole process,
   * which costs every request on every promise, far more than tracing itself.
   */
  current: { context: Context | null }
}

/** An upstream's address as `server.address`/`server.port` say it, parsed once per route. */
const upstreamAddresses = new WeakMap<CompiledRoute, { address: string, port: number }>()

function upstreamAddress (route: CompiledRoute): { address: string, port: number } {
  let found = upstreamAddresses.get(route)
  if (found === undefined) {
    const url = new URL(route.upstream.origin)
    found = { address: url.hostname, port: url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port) }
    upstreamAddresses.set(route, found)
  }
  return found
}

/** `hit`: a verdict the caches remembered; `miss`: verified (or introspected) now; absent: no token was looked up. */
function cacheOutcome (decision: Decision): 'hit' | 'miss' | undefined {
  const path = decision.tokenPath
  return path === undefined ? undefined : path === 'cache' ? 'hit' : 'miss'
}

export class RequestTrace {
  private readonly kit: TraceKit
  private readonly server: Span
  private readonly serverContext: Context
  private readonly decision: Span
  private verification: Span | null = null
  private upstream: Span | null = null
  private readonly method: string
  private decisionOpen = true
  private finished = false

  /**
   * @param parent The client's (or ingress's) trace context when it is trusted; `ROOT_CONTEXT` otherwise.
   * @param name The server span's name until the route is known: the method, `forward-auth` or `ext_authz`.
   * @param attributes More of the server span's attributes (an ext_authz Check's `rpc.*`).
   */
  constructor (kit: TraceKit, parent: Context, name: string, method: string, attributes: Attributes = {}) {
    this.kit = kit
    this.method = method
    this.server = kit.tracer.startSpan(name, { kind: SpanKind.SERVER, attributes: { ...attributes, 'http.request.method': method } }, parent)
    this.serverContext = trace.setSpan(parent, this.server)
    this.decision = kit.tracer.startSpan('scopegate.decision', { kind: SpanKind.INTERNAL }, this.serverContext)
  }

  /** The request's trace id, for its decision line. */
  get traceId (): string { return this.server.spanContext().traceId }

  /** The server span's id, for the decision line. */
  get spanId (): string { return this.server.spanContext().spanId }

  /** Runs a fresh verification in its own span, the parent of the fetches it starts. */
  verifying<T> (verify: () => Promise<T>): Promise<T> {
    const span = this.kit.tracer.startSpan('scopegate.verify_token', { kind: SpanKind.INTERNAL }, trace.setSpan(ROOT_CONTEXT, this.decision))
    this.verification = span
    const slot = this.kit.current
    slot.context = trace.setSpan(ROOT_CONTEXT, span)
    try {
      return verify()
    } finally {
      slot.context = null
    }
  }

  /**
   * The decision is made (rate limit included): its attributes on the decision span (and the
   * verification's), which end. Called once; later calls do nothing.
   */
  decided (decision: Decision | null, routeName = true): void {
    if (!this.decisionOpen) return
    this.decisionOpen = false
    if (decision === null) {
      // Refused before the engine was asked (a framework error): the server span's status says why.
      this.decision.end()
      return
    }
    const route = decision.route
    const error = decision.allowed ? decision.audit : decision.error
    const cache = cacheOutcome(decision)
    const span = this.decision
    span.setAttribute('scopegate.decision', decision.allowed ? (decision.audit === null ? 'allow' : 'audit_deny') : 'deny')
    span.setAttribute('scopegate.reason', error?.reason ?? 'allowed')
    if (!decision.allowed) span.setAttribute('scopegate.status', decision.error.status)
    if (route !== null) {
      span.setAttribute('scopegate.route', route.id)
      this.server.setAttribute('scopegate.route', route.id)
      this.server.setAttribute('http.route', route.path)
      if (routeName) this.server.updateName(`${this.method} ${route.path}`)
    }
    if (decision.path !== null) this.server.setAttribute('url.path', decision.path)
    if (cache !== undefined) span.setAttribute('scopegate.token.cache', cache)
    if (decision.tokenPath !== undefined) span.setAttribute('scopegate.token.path', decision.tokenPath)
    if (decision.token !== null) {
      span.setAttribute('scopegate.issuer', decision.token.issuer.id)
      if (decision.token.clientId !== null) span.setAttribute('scopegate.client_id', decision.token.clientId)
    }
    if (!decision.allowed && decision.error.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: decision.error.reason })
    this.endVerification(decision)
    span.end()
  }

  /** The verification's outcome: the issuer when the token verified, the reason when it did not. */
  private endVerification (decision: Decision): void {
    const span = this.verification
    if (span === null) return
    this.verification = null
    if (decision.tokenPath !== undefined) span.setAttribute('scopegate.token.path', decision.tokenPath)
    if (decision.token !== null) span.setAttribute('scopegate.issuer', decision.token.issuer.id)
    else if (!decision.allowed) {
      span.setAttribute('scopegate.reason', decision.error.reason)
      if (decision.error.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: decision.error.reason })
    }
    span.end()
  }

  /**
   * The upstream call begins: its span starts, and the headers sent upstream carry its `traceparent` in
   * place of the client's, with the client's `tracestate` only when the client's trace was continued.
   */
  upstreamHeaders (headers: IncomingHttpHeaders, decision: Allow): IncomingHttpHeaders {
    const { route } = decision
    const { address, port } = upstreamAddress(route)
    const path = joinUpstreamPath(route.upstream.basePath, route.path, decision.path, route.stripPrefix)
    const span = this.kit.tracer.startSpan(this.method, {
      kind: SpanKind.CLIENT,
      attributes: {
        'http.request.method': this.method,
        'server.address': address,
        'server.port': port,
        // Without the query: it may hold anything, a token among it.
        'url.full': route.upstream.origin + path,
        'url.path': decision.path,
        'scopegate.upstream': route.upstream.id
      }
    }, this.serverContext)
    this.upstream = span
    delete headers.traceparent
    delete headers.tracestate
    this.kit.propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, defaultTextMapSetter)
    return headers
  }

  /** The upstream could not be reached or did not answer in time (502/504). */
  upstreamFailed (error: GatewayError): void {
    const span = this.upstream
    if (span === null) return
    this.upstream = null
    span.setAttribute('error.type', error.reason)
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.reason })
    span.end()
  }

  /**
   * The answer is sent: the decision span if still open (a denial is decided and answered at once), the
   * upstream span if still open, and the server span end, with the status.
   */
  finish (status: number, decision: Decision | null, routeName = true): void {
    if (this.finished) return
    this.finished = true
    this.decided(decision, routeName)
    const upstream = this.upstream
    if (upstream !== null) {
      this.upstream = null
      upstream.setAttribute('http.response.status_code', status)
      if (status >= 500) upstream.setStatus({ code: SpanStatusCode.ERROR })
      upstream.end()
    }
    this.server.setAttribute('http.response.status_code', status)
    if (status >= 500) this.server.setStatus({ code: SpanStatusCode.ERROR })
    this.server.end()
  }

  /** The client went away before its answer: every open span ends, marked as such. */
  aborted (): void {
    if (this.finished) return
    this.finished = true
    if (this.decisionOpen) {
      this.decisionOpen = false
      this.decision.end()
    }
    for (const span of [this.verification, this.upstream]) {
      span?.setAttribute('error.type', 'client_aborted')
      span?.end()
    }
    this.server.setAttribute('error.type', 'client_aborted')
    this.server.end()
  }
}
