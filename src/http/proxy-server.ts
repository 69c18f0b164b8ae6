/**
 * The proxy listener: every request is decided before any body byte is read, most denials in the
 * listener's `request` event before Fastify sees them (`early-refusal.ts`), everything else in
 * `onRequest`; a denial never reaches the upstream. So is a request of a shape that can be read two ways
 * (two Host headers, a Host the target contradicts: `check-host.ts`). A form body beside a bearer header
 * is scanned for a second token as it passes (`form-body.ts`). An allowed request is streamed upstream
 * (`h1-forward.ts`, or `h2-forward.ts` for `http2: true` upstreams) to the normalized path (the one that
 * was authorized), with client copies of identity headers stripped and scopegate's added. Routing is
 * scopegate's own (exact, then longest segment-aware prefix), so one catch-all Fastify route serves
 * every path.
 *
 * `Expect: 100-continue` is answered here, not by Node: with a `checkContinue` listener Node sends no
 * `100 Continue` by itself, so a client that waits for it sends no body before the decision, and a denied
 * one never sends it. Any other expectation is refused with 417 (docs/proxying.md).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerFactory } from 'fastify'
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { CompiledRoute } from '../config/types.js'
import { PendingDecision, decideKnown, decidePending, type Allow, type Decision } from '../decision/decide.js'
import type { Engine } from '../decision/engine.js'
import { GatewayError, deny, toGatewayError } from '../shared/errors.js'
import { clientIp } from '../request/client-ip.js'
import { checkHost, checkHttp2Host } from '../request/check-host.js'
import { tokenDuplicated } from '../request/extract-token.js'
import { joinUpstreamPath } from '../request/normalize-path.js'
import { downstreamHeaders } from '../forward/response-headers.js'
import { clientErrorHandler, expectationFailed } from './client-errors.js'
import { checkFormBody } from './form-body.js'
import type { DecisionLog } from './decision-log.js'
import type { RateLimiter } from '../limits/rate-limiter.js'
import { responseCorsHeaders, upstreamCorsHeaders } from '../cors/cors-headers.js'
import { answerPreflight } from '../cors/preflight.js'
import { isTlsFailure } from '../upstream/connector.js'
import { H2Sessions } from '../upstream/h2-sessions.js'
import { forwardH2, type H2ForwardOptions } from './h2-forward.js'
import { H1Forwarder } from './h1-forward.js'
import { sendProxyError } from './grpc-error.js'
import type { RequestTrace } from '../observability/request-trace.js'
import type { Tracing } from '../observability/tracing.js'
import { EarlyRefusal, type EarlyDecision } from './early-refusal.js'
import { proxyDecisionInput } from './proxy-decision-input.js'

// Moved to proxy-decision-input.ts; still exported here for the callers that name it from this module.
export { proxyOrigin } from './proxy-decision-input.js'

declare module 'fastify' {
  interface FastifyRequest {
    decision: Decision | null
    /** The engine the decision was made under: a reload mid-request does not change what applies to it. */
    engine: Engine | null
    startedAt: bigint
    /** The token sent upstream in place of the client's, when the route re-issues. */
    reissued: string | undefined
    /** The request's spans when tracing is on (docs/observability.md#tracing); null when it is off. */
    trace: RequestTrace | null
  }
}

export interface ProxyServerOptions {
  engine: () => Engine
  logger: Logger
  decisions: DecisionLog
  /** The re-issued token for an allowed request, when its route re-issues (see `Reissuer.forDecision`). */
  reissue: (decision: Allow) => Promise<string> | undefined
  /** Routes' rate limits, spent after the engine allows (docs/rate-limits.md). */
  limits: RateLimiter
  /** The listener's server when it is not plaintext HTTP/1.1 (TLS, HTTP/2: `listener-server.ts`). */
  serverFactory?: FastifyServerFactory
  /** The verified client certificate's RFC 8705 thumbprint, for mTLS listeners (`client-certificate.ts`). */
  certificateThumbprint?: (raw: IncomingMessage) => string | undefined
  /** Tracing, when on; null or absent: off, and no request pays for it. */
  tracing?: Tracing | null
}

/** An upstream that could not be reached or did not answer in time, as a 502 or 504 (also used by `upgrade.ts`). */
export function upstreamError (err: Error & { statusCode?: number, code?: string, cause?: unknown }, upstream: string): GatewayError {
  const cause = err.cause as { code?: string } | undefined
  const code = cause?.code ?? err.code ?? 'unknown'
  if (err.statusCode === 504 || /TIMEOUT/i.test(code)) {
    return new GatewayError(504, 'gateway_timeout', 'upstream_timeout', 'the upstream did not answer in time', { detail: `${upstream}: ${code}` })
  }
  // A certificate that does not verify: reachable but not trusted. The detail (the log's) names the code, never the certificate.
  const reason = isTlsFailure(code) ? 'upstream_tls' : /RESET|SOCKET/i.test(code) ? 'upstream_reset' : 'upstream_refused'
  return new GatewayError(502, 'bad_gateway', reason, 'the upstream could not be reached', { detail: `${upstream}: ${code}` })
}

/** An Authorization header of the Bearer scheme (whether or not its token is well formed). */
const BEARER_HEADER = /^\s*bearer /i

/** A request allowed by the engine but refused afterwards (its form body): the decision line says deny. */
function overruled (request: FastifyRequest, error: GatewayError): void {
  const decision = request.decision
  if (decision?.allowed === true) request.decision = { ...decision, allowed: false, error }
}

export function frameworkErrorToGatewayError (err: Error & { statusCode?: number, code?: string }): GatewayError {
  if (err instanceof GatewayError) return err
  if (err.code === 'FST_ERR_BAD_URL' || err.statusCode === 400) return deny.badRequest('path_invalid', 'the request path is not valid')
  return toGatewayError(err)
}

/**
 * Node's HTTP/1.1 options for the proxy listener, whichever server serves it. requireHostHeader off: Node
 * would answer a missing Host with its own bare 400; onRequest answers it as JSON.
 */
export function proxyHttpOptions (config: Engine['config']): { maxHeaderSize: number, requireHostHeader: boolean } {
  return { maxHeaderSize: config.server.maxHeaderSize, requireHostHeader: false }
}

/** Fastify set up for a proxy that never parses bodies and answers every error as the docs say. */
async function createApp (engine: () => Engine, logger: Logger, decisions: DecisionLog, serverFactory: FastifyServerFactory | undefined): Promise<FastifyInstance> {
  const config = engine().config
  const app = Fastify({
    ...(serverFactory === undefined ? {} : { serverFactory }),
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request: the decision line is the request's record, and a child costs a bindings
    // serialization on every request for the few lines (5xx) that would carry a request id.
    childLoggerFactory: (parent) => parent,
    requestTimeout: config.server.requestTimeoutMs,
    http: proxyHttpOptions(config),
    clientErrorHandler: clientErrorHandler(decisions),
    frameworkErrors: (err, _request, reply) => { sendProxyError(reply, frameworkErrorToGatewayError(err)) },
    return503OnClosing: false,
    forceCloseConnections: 'idle'
  })

  // Bodies are never parsed: the raw stream is handed to the proxy as it arrives. A form body beside a
  // bearer header is only scanned for a second token on its way (form-body.ts).
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
  app.addContentTypeParser('application/x-www-form-urlencoded', (request, payload, done) => {
    // An audit route forwards what it would deny (as with a token in the query): nothing to scan for.
    const audited = request.decision?.route?.mode === 'audit'
    if (audited || !BEARER_HEADER.test(request.raw.headers.authorization ?? '')) return done(null, payload)
    checkFormBody(payload, () => tokenDuplicated('access_token in the form body'), done)
  })
  app.decorateRequest('decision', null)
  app.decorateRequest('engine', null)
  app.decorateRequest('startedAt', 0n)
  app.decorateRequest('reissued', undefined)
  app.decorateRequest('trace', null)

  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    const error = frameworkErrorToGatewayError(err)
    overruled(request, error)
    withCors(request, reply)
    if (error.status >= 500) request.log.error({ err: { message: err.message, code: (err as { code?: string }).code } }, 'request failed')
    sendProxyError(reply, error)
  })
  app.setNotFoundHandler((_request, reply) => { sendProxyError(reply, deny.noRoute()) })
  app.addHook('onResponse', (request, reply, done) => { decisions.record(request, reply); done() })
  return app
}

/** A denial on a CORS route carries its fields, so the page can read it (docs/cors.md). */
function withCors (request: FastifyRequest, reply: FastifyReply): void {
  const cors = request.decision?.route?.cors
  if (cors !== undefined && cors !== null) reply.headers(responseCorsHeaders(cors, request.raw.headers.origin))
}

/**
 * Requests whose `Expect` scopegate answers itself: with these listeners Node sends no `100 Continue` on
 * its own, so `onRequest` sends it only to an allowed request, or answers 417.
 */
class Expectations {
  private readonly awaitingContinue = new WeakSet<IncomingMessage>()
  private readonly unmet = new WeakSet<IncomingMessage>()

  constructor (app: FastifyInstance) {
    app.server.on('checkContinue', (req: IncomingMessage, res) => {
      this.awaitingContinue.add(req)
      app.routing(req, res)
    })
    app.server.on('checkExpectation', (req: IncomingMessage, res) => {
      this.unmet.add(req)
      app.routing(req, res)
    })
  }

  /** The client waits for 100 Continue before it sends its body. */
  awaiting (raw: IncomingMessage): boolean { return raw.headers.expect !== undefined && this.awaitingContinue.has(raw) }

  /**
   * The client expects something other than 100-continue. Over HTTP/2 Node raises `checkExpectation` for
   * nothing: any other expectation arrives as a plain request, and is refused the same way.
   */
  unsupported (raw: IncomingMessage): boolean {
    const expect = raw.headers.expect
    if (expect === undefined) return false
    return this.unmet.has(raw) || (raw.httpVersionMajor === 2 && expect.trim().toLowerCase() !== '100-continue')
  }

  /**
   * A denial. A client that waits for 100 Continue (or was refused its expectation) has sent no body and
   * will not send it, so the connection is closed rather than kept waiting for a body to drain; Node does
   * so itself when it answers a 100-continue request without a 100, the header says it for both. A client
   * that sends its body unasked is already sending it: closing then would reset the connection under the
   * answer, so Node drains it (bounded by `server.requestTimeout`) and the upstream still sees none of it.
   */
  refuse (request: FastifyRequest, reply: FastifyReply, error: GatewayError): void {
    // Refused before the engine decided: the decision line still names the reason.
    request.decision ??= { allowed: false, error, route: null, path: null, token: null, scopes: [] }
    // HTTP/2 has no Connection header (RFC 9113 §8.2.2): its stream ends with the answer, and the session stays.
    if (request.raw.httpVersionMajor !== 2 && (this.awaiting(request.raw) || this.unsupported(request.raw))) reply.header('connection', 'close')
    withCors(request, reply)
    sendProxyError(reply, error)
  }
}

interface Forwarder {
  forward: (reply: FastifyReply, decision: Allow) => void
  /** The HTTP/1.1 connection pools, closed with the server. */
  h1: H1Forwarder
}

/** Streams an allowed request to its route's upstream, at the normalized path, over HTTP/1.1 or HTTP/2 as the upstream speaks. */
function upstreamForwarder (engine: () => Engine, decisions: DecisionLog, sessions: H2Sessions): Forwarder {
  const failed = (reply: FastifyReply, error: Error, route: CompiledRoute): void => {
    // The request body's own refusal (a token found in a long form body) aborted the upstream request.
    if (error instanceof GatewayError) {
      overruled(reply.request, error)
      sendProxyError(reply, error)
      return
    }
    const failure = upstreamError(error, route.upstream.id)
    decisions.upstreamFailed(reply.request, failure)
    reply.request.trace?.upstreamFailed(failure)
    sendProxyError(reply, failure)
  }
  const fail = (reply: FastifyReply, error: Error): void => { failed(reply, error, (reply.request.decision as Allow).route) }
  // The upstream's hop-by-hop headers stay behind; on a CORS route its own CORS fields are replaced.
  const responseHeaders = (route: CompiledRoute, headers: IncomingHttpHeaders, request: FastifyRequest): IncomingHttpHeaders => route.cors === null
    ? downstreamHeaders(headers)
    : upstreamCorsHeaders(downstreamHeaders(headers), route.cors, request.raw.headers.origin)
  // `http2: true` upstreams: scopegate's own HTTP/2 forwarder, which keeps trailers (docs/grpc.md).
  const h2: H2ForwardOptions = { sessions, engine, fail, responseHeaders }
  const h1 = new H1Forwarder({ engine, fail, responseHeaders })
  const forward = (reply: FastifyReply, decision: Allow): void => {
    const { route } = decision
    // The base path goes through joinUpstreamPath too, so stripping the whole prefix gives `/api`, not `/api/`.
    const path = joinUpstreamPath(route.upstream.basePath, route.path, decision.path, route.stripPrefix)
    if (route.upstream.http2) forwardH2(h2, reply.request, reply, decision, path + decision.query)
    else h1.forward(reply.request, reply, decision, path)
  }
  return { forward, h1 }
}

/** What `onRequest` goes on from: a decision `early-refusal.ts` made, or one made here; and the request's trace. */
interface Decided extends EarlyDecision { trace: RequestTrace | null }

/**
 * The checks before the decision, then the decision, for a request `early-refusal.ts` did not decide:
 * null when one of the checks has answered it already.
 */
function decideHere (engine: Engine, request: FastifyRequest, reply: FastifyReply, expectations: Expectations, decisions: DecisionLog,
  thumbprint: ProxyServerOptions['certificateThumbprint'], tracing: Tracing | null): Decided | null {
  const startedAt = request.startedAt = process.hrtime.bigint()
  request.engine = engine
  const raw = request.raw
  const trace = tracing === null ? null : (request.trace = tracing.proxyRequest(raw, engine.config.server.trustProxy))
  if (expectations.unsupported(raw)) { expectations.refuse(request, reply, expectationFailed()); return null }
  try {
    // HTTP/2 names its host in `:authority`: once checked, it is the request's Host for every later stage
    // (routing, CORS, forwarding headers, the upstream's Host with preserveHost), as on HTTP/1.1.
    if (raw.httpVersionMajor === 2) raw.headers.host = checkHttp2Host(raw.rawHeaders)
    else checkHost(raw.rawHeaders, raw.url ?? '', raw.httpVersion)
  } catch (err) {
    expectations.refuse(request, reply, toGatewayError(err))
    return null
  }
  if (answeredPreflight(engine, request, reply, decisions)) return null
  const ip = clientIp(raw.socket.remoteAddress, raw.headers['x-forwarded-for'], engine.config.server.trustProxy)
  return { engine, decided: decideKnown(engine, proxyDecisionInput(raw, engine, ip, thumbprint)), clientIp: ip, startedAt, trace }
}

/**
 * The `onRequest` hook that decides every request before any body byte is read, unless
 * `early-refusal.ts` has decided it already. Callback-style: a request whose token the caches know is
 * decided without a promise; only a fresh verification waits.
 */
function decideOnRequest (engine: () => Engine, expectations: Expectations, decisions: DecisionLog, limits: RateLimiter,
  thumbprint: ProxyServerOptions['certificateThumbprint'], tracing: Tracing | null, early: EarlyRefusal) {
  return (request: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    const raw = request.raw
    const known = early.take(raw)
    if (known !== undefined) {
      request.startedAt = known.startedAt
      request.engine = known.engine
    }
    const here = known === undefined ? decideHere(engine(), request, reply, expectations, decisions, thumbprint, tracing) : null
    const from = known ?? here
    if (from === null) return
    const { decided, clientIp: ip } = from
    const trace = here?.trace ?? null
    const admit = (limited: GatewayError | null): void => {
      if (limited !== null) {
        overruled(request, limited)
        return expectations.refuse(request, reply, limited)
      }
      // Decided and allowed: now the client may send its body, which is streamed upstream.
      if (trace !== null) trace.decided(request.decision)
      if (expectations.awaiting(raw)) reply.raw.writeContinue()
      done()
    }
    const proceed = (decision: Decision): void => {
      request.decision = decision
      if (!decision.allowed) return expectations.refuse(request, reply, decision.error)
      // The rate limit is spent only now, by a request that proved its identity (docs/rate-limits.md).
      const limited = limits.check(decision.route, decision.token, ip)
      if (limited instanceof Promise) void limited.then(admit)
      else admit(limited)
    }
    // Only a token never seen before waits for its verification (decidePending never rejects).
    if (!(decided instanceof PendingDecision)) return proceed(decided)
    if (trace === null || decided.miss === null) void decidePending(decided).then(proceed)
    else void trace.verifying(async () => await decidePending(decided)).then(proceed)
  }
}

/** A CORS preflight on a CORS route: answered here, without a token, and never forwarded (docs/cors.md). */
function answeredPreflight (engine: Engine, request: FastifyRequest, reply: FastifyReply, decisions: DecisionLog): boolean {
  const raw = request.raw
  const preflight = answerPreflight(engine.routes, raw.method ?? 'GET', raw.url ?? '', raw.headers.origin,
    raw.headers['access-control-request-method'], raw.headers['access-control-request-headers'], raw.headers.host)
  if (preflight === null) return false
  request.decision = { allowed: true, route: preflight.route, path: preflight.path, query: '', token: null, scopes: [], headers: {}, audit: null }
  decisions.preflightAnswered(request)
  reply.code(204).headers({ ...preflight.headers, 'cache-control': 'no-store' }).send()
  return true
}

export async function buildProxyServer (options: ProxyServerOptions): Promise<FastifyInstance> {
  const { engine, logger, decisions } = options
  const app = await createApp(engine, logger, decisions, options.serverFactory)
  const expectations = new Expectations(app)
  const sessions = new H2Sessions()
  app.addHook('onClose', (_app, done) => { sessions.closeAll(); done() })
  const tracing = options.tracing ?? null
  const { forward, h1 } = upstreamForwarder(engine, decisions, sessions)
  app.addHook('onClose', (_app, done) => { h1.close().then(() => { done() }, done) })
  if (tracing !== null) {
    app.addHook('onResponse', (request, reply, done) => { request.trace?.finish(reply.statusCode, request.decision); done() })
    app.addHook('onRequestAbort', (request, done) => { request.trace?.aborted(); done() })
  }
  // Node's request listener is Fastify's router: the early refusal goes in front of it (early-refusal.ts).
  const early = new EarlyRefusal({ engine, decisions, thumbprint: options.certificateThumbprint, tracing: tracing !== null })
  for (const routing of app.server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>) {
    app.server.removeListener('request', routing)
    app.server.on('request', early.listener(routing))
  }
  const onRequest = decideOnRequest(engine, expectations, decisions, options.limits, options.certificateThumbprint, tracing, early)
  app.all('*', { onRequest }, (request, reply) => {
    const decision = request.decision as Allow
    const reissuing = options.reissue(decision)
    if (reissuing === undefined) return forward(reply, decision)
    reissuing.then((token) => {
      request.reissued = token
      forward(reply, decision)
    }, (err: unknown) => { reply.send(err) })
  })
  return app
}
