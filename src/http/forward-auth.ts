/**
 * Forward auth on the admin listener (docs/forward-auth.md): `ANY /decisions` and `ANY /decisions/*`, asked
 * by an ingress (nginx `auth_request`, ingress-nginx `auth-url`, Traefik ForwardAuth, Envoy ext_authz
 * over HTTP) whether to let a request through. The request is named by the call (see
 * `forward-auth-request.ts`) and judged by the same `decide()` as proxy mode: same normalization, same
 * routes, same policy. An allow is `200` with the identity headers and an empty body, for the ingress to
 * copy upstream; a denial is 401 or 403 with the error body and challenge of docs/responses.md, the body left out
 * for nginx, which would close the connection to skip it (see `forward-auth-answer.ts` for the status,
 * body and caching rules). Nothing is proxied from here.
 *
 * As on the proxy listener, the decision is made in `onRequest`, before any body is read: an ingress
 * that sends the original body along (Envoy `with_request_body`) is answered without it being parsed.
 */
import { METHODS, type IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { CompiledConfig } from '../config/types.js'
import type { Allow, Deny } from '../decision/decide.js'
import type { Engine } from '../decision/engine.js'
import { deny, toGatewayError, type GatewayError } from '../shared/errors.js'
import { unmapIPv4, type IpMatcher } from '../net/ip-matcher.js'
import { clientIp } from '../request/client-ip.js'
import { authorizationValues } from '../request/extract-token.js'
import { DPOP_SCHEME, dpopProofValues } from '../request/extract-dpop-token.js'
import { forwardAuthOrigin } from './forward-auth-origin.js'
import type { DecisionLog } from './decision-log.js'
import type { RateLimiter } from '../limits/rate-limiter.js'
import { responseCorsHeaders } from '../cors/cors-headers.js'
import { judgeRequest } from '../authz/judge-request.js'
import { forwardedCertificate } from './forward-auth-certificate.js'
import type { Decision } from '../decision/decide.js'
import { allowCacheHint, allowHeaders, denialCacheHint, denialWithoutBody, forwardAuthError, type CacheHint } from './forward-auth-answer.js'
import { DECISIONS_PATH, originalRequest, type OriginalRequest } from './forward-auth-request.js'
import { sendError, sendErrorWithoutBody } from './reply-error.js'
import type { Tracing } from '../observability/tracing.js'

export interface ForwardAuthOptions {
  engine: () => Engine
  decisions: DecisionLog
  /** Milliseconds since the epoch, for the cache lifetime; injected by tests. */
  now?: () => number
  /** The re-issued token for an allowed request, when its route re-issues (see `Reissuer.forDecision`). */
  reissue: (decision: Allow) => Promise<string> | undefined
  /** Routes' rate limits, spent by an allowed call as by a proxied request (docs/rate-limits.md#forward-auth). */
  limits: RateLimiter
  /** Tracing, when on: each call's decision in a span, continued from a trusted ingress's `traceparent`. */
  tracing?: Tracing | null
}

/**
 * The client address network rules are decided on: `X-Forwarded-For`, or failing that `X-Real-IP` (which
 * plain nginx configs set), each believed only from a `trustProxy` peer, read as `client-ip.ts` reads it.
 */
function forwardAuthClientIp (raw: IncomingMessage, trusted: IpMatcher | null): string {
  const forwardedFor = raw.headers['x-forwarded-for']
  const realIp = raw.headers['x-real-ip']
  return clientIp(raw.socket.remoteAddress, forwardedFor ?? realIp, trusted)
}

function refused (error: GatewayError): Deny {
  return { allowed: false, error, route: null, path: null, token: null, scopes: [] }
}

/** On a CORS route, a denial carries the route's CORS fields: Traefik and Envoy hand it to the browser (docs/cors.md#forward-auth). */
function withCors (reply: FastifyReply, raw: IncomingMessage, decision: Decision): void {
  const cors = decision.route?.cors
  if (cors !== undefined && cors !== null) reply.headers(responseCorsHeaders(cors, raw.headers.origin))
}

/**
 * A denial as a forward-auth answer: 401 or 403, and without its body for the nginx family (see
 * `denialWithoutBody`). `caching`: how long an ingress may keep it (see `denialCacheHint`); `no-store` if left out.
 */
function sendDenial (reply: FastifyReply, raw: IncomingMessage, error: GatewayError, caching?: CacheHint): FastifyReply {
  const answer = forwardAuthError(error)
  return denialWithoutBody(raw.rawHeaders) ? sendErrorWithoutBody(reply, answer, caching) : sendError(reply, answer, caching)
}

function isDecisionsUrl (url: string): boolean {
  return url === DECISIONS_PATH || url.startsWith(`${DECISIONS_PATH}/`) || url.startsWith(`${DECISIONS_PATH}?`)
}

/**
 * The admin listener's `frameworkErrors`: a URL its router cannot decode (a malformed or non-UTF-8
 * percent-escape, as in `/decisions/a%zz`) gets the documented 400 `invalid_request`, and under
 * `/decisions` the forward-auth 403, instead of Fastify's own 400 that an ingress would turn into a 500.
 */
export function adminFrameworkError (err: Error, request: FastifyRequest, reply: FastifyReply): void {
  const error = deny.badRequest('path_invalid', 'the request path is not acceptable', err.message)
  if (isDecisionsUrl(request.raw.url ?? '')) sendDenial(reply, request.raw, error)
  else sendError(reply, error)
}

/** The request the ingress asks about, named as `forward-auth-request.ts` reads it. @throws GatewayError */
function originalOf (raw: IncomingMessage, trusted: IpMatcher | null): OriginalRequest {
  return originalRequest({
    method: raw.method ?? 'GET',
    url: raw.url ?? '',
    rawHeaders: raw.rawHeaders,
    peerTrusted: trusted !== null && trusted.has(unmapIPv4(raw.socket.remoteAddress ?? ''))
  })
}

/** An allow: 200, the identity headers for the ingress to copy, and how long it may cache the answer. */
function sendAllow (reply: FastifyReply, decision: Allow, config: CompiledConfig, reissued: string | undefined, nowMs: number): FastifyReply {
  return reply.code(200).headers(allowHeaders(decision, config, reissued)).headers(allowCacheHint(decision, nowMs)).send()
}

/** The admin plugin: registers the two forward-auth routes. */
export function forwardAuth (options: ForwardAuthOptions): (app: FastifyInstance) => void {
  const now = options.now ?? Date.now
  return (app) => {
    // Envoy calls with the original method, whatever it is (PROPFIND, PURGE…): Fastify routes only the
    // common ones unless told, and would answer the others 404, which an ingress reports as an error.
    for (const method of METHODS) {
      if (method !== 'CONNECT' && !app.supportedMethods.includes(method)) app.addHttpMethod(method, { hasBody: true })
    }
    // The proxy listener declares these too (proxy-server.ts); the decision log reads them.
    if (!app.hasRequestDecorator('decision')) app.decorateRequest('decision', null)
    if (!app.hasRequestDecorator('startedAt')) app.decorateRequest('startedAt', 0n)
    if (!app.hasRequestDecorator('trace')) app.decorateRequest('trace', null)
    const tracing = options.tracing ?? null
    /** The method decided on, for the decision log: the original one, not the call's own. */
    const decidedMethod = new WeakMap<FastifyRequest, string>()

    const onRequest = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      request.startedAt = process.hrtime.bigint()
      const engine = options.engine()
      const raw = request.raw
      const trusted = engine.config.server.trustProxy
      const peerTrusted = trusted !== null && trusted.has(unmapIPv4(raw.socket.remoteAddress ?? ''))
      const trace = tracing === null ? null : (request.trace = tracing.forwardAuthRequest(raw, trusted))
      try {
        let original: OriginalRequest
        let certificate: string | undefined
        try {
          original = originalOf(raw, trusted)
          certificate = forwardedCertificate(raw.rawHeaders, engine.config.server.clientCertificateHeader, peerTrusted)
        } catch (err) {
          const error = toGatewayError(err)
          request.decision = refused(error)
          return sendDenial(reply, raw, error)
        }
        decidedMethod.set(request, original.method)
        const ip = forwardAuthClientIp(raw, trusted)
        const verdict = await judgeRequest(engine, {
          method: original.method,
          target: original.target,
          authorization: authorizationValues(raw.rawHeaders),
          clientIp: ip,
          host: original.host,
          // Read only for a DPoP-scheme token (docs/dpop.md): the proof and the origin the ingress names.
          dpop: DPOP_SCHEME.test(raw.headers.authorization ?? '')
            ? { proofs: dpopProofValues(raw.rawHeaders), origin: forwardAuthOrigin(raw.rawHeaders, peerTrusted) }
            : undefined,
          ...(certificate === undefined ? {} : { certificateThumbprint: certificate })
        }, { origin: raw.headers.origin, requestMethod: raw.headers['access-control-request-method'], requestHeaders: raw.headers['access-control-request-headers'] }, options,
        trace === null ? undefined : trace.verifying.bind(trace))
        request.decision = verdict.decision
        // A CORS preflight carries no credentials: let it through with no identity (every identity header
        // empty) and the CORS grant, for the ingress's CORS or the upstream to answer (docs/cors.md#forward-auth).
        if (verdict.kind === 'preflight') {
          options.decisions.preflightAnswered(request)
          return reply.code(200).headers({ ...allowHeaders(verdict.decision, engine.config), ...verdict.cors, 'cache-control': 'no-store' }).send()
        }
        if (verdict.kind === 'deny') {
          withCors(reply, raw, verdict.decision)
          return sendDenial(reply, raw, verdict.decision.error, denialCacheHint(verdict.decision))
        }
        return sendAllow(reply, verdict.decision, engine.config, verdict.reissued, now())
      } catch (err) {
        // Never a 5xx to the ingress (it would answer the client with a 500): an internal error is a 403.
        const error = toGatewayError(err)
        request.log.error({ err: { message: error.detail ?? error.message } }, 'forward-auth decision failed')
        request.decision = refused(error)
        return sendDenial(reply, raw, error)
      }
    }

    const onResponse = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
      options.decisions.record(request, reply, decidedMethod.get(request))
      request.trace?.finish(reply.statusCode, request.decision, false)
    }

    // Never reached: onRequest always answers. It exists because Fastify routes need a handler.
    const handler = async (_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => reply
    app.all(DECISIONS_PATH, { onRequest, onResponse }, handler)
    app.all(`${DECISIONS_PATH}/*`, { onRequest, onResponse }, handler)
  }
}
