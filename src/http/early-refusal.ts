/**
 * Denials answered before Fastify sees the request. A request refused in `onRequest` still cost Fastify
 * its request and reply objects, the router's lookup of the catch-all route, the hook runner, the reply's
 * header handling and its `onResponse` listeners: on a flood of bad or missing tokens, more than the
 * decision itself (bench/RESULTS.md, "Rejections against HAProxy").
 *
 * So the proxy listener's `request` event decides first, on Node's own request, every request whose
 * earlier checks in `onRequest` are known to pass or not to apply: HTTP/1.x (HTTP/2 names its host in
 * `:authority`), no `Expect` (answered by `onRequest`'s expectations), a method the catch-all route
 * serves and that is not a CORS preflight's, an origin-form target with no percent-escape in its path
 * (Fastify's router would refuse a malformed one as a bad URL first), no gRPC content type (refused in
 * gRPC's shape), tracing off (its spans start in `onRequest`), and a Host `checkHost` accepts. A denial
 * among them is written here by `writeError`, with the route's CORS fields, the same bytes `sendError`
 * writes, and its decision line once the answer is written. Every other decision (an allow, a token to
 * verify, a 429 with per-request fields) goes on to Fastify with its request, and `onRequest` takes it
 * (`take`) instead of deciding twice.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { PendingDecision, decideKnown, type Decision } from '../decision/decide.js'
import type { Engine } from '../decision/engine.js'
import { responseCorsHeaders } from '../cors/cors-headers.js'
import { checkHost } from '../request/check-host.js'
import { clientIp } from '../request/client-ip.js'
import type { DecisionLog } from './decision-log.js'
import { isGrpcRequest } from './grpc-error.js'
import { proxyDecisionInput } from './proxy-decision-input.js'
import { writeError } from './reply-error.js'

/** A decision made before Fastify routed the request, for `onRequest` to go on from. */
export interface EarlyDecision {
  engine: Engine
  decided: Decision | PendingDecision
  clientIp: string
  /** `process.hrtime.bigint()` when the request arrived. */
  startedAt: bigint
}

export interface EarlyRefusalOptions {
  engine: () => Engine
  decisions: DecisionLog
  /** The mTLS listener's certificate reader (`ProxyServerOptions.certificateThumbprint`). */
  thumbprint: ((raw: IncomingMessage) => string | undefined) | undefined
  /** Tracing on: nothing is decided early, since a request's spans start in `onRequest`. */
  tracing: boolean
}

/** Methods Fastify's catch-all route serves, none of them a preflight's (OPTIONS). */
const EARLY_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'])

/** Whether `onRequest` would reach the decision for `raw` with nothing answered before it (see the header). */
function plain (raw: IncomingMessage): boolean {
  const url = raw.url ?? ''
  if (raw.httpVersionMajor !== 1 || raw.headers.expect !== undefined || !EARLY_METHODS.has(raw.method ?? '')) return false
  if (url.charCodeAt(0) !== 0x2f) return false
  const escape = url.indexOf('%')
  if (escape !== -1) {
    const query = url.indexOf('?')
    if (query === -1 || escape < query) return false
  }
  return !isGrpcRequest(raw.headers['content-type'])
}

export class EarlyRefusal {
  private readonly decided = new WeakMap<IncomingMessage, EarlyDecision>()

  constructor (private readonly options: EarlyRefusalOptions) {}

  /** Node's `request` listener, in front of Fastify's `handler`: a request refused here never reaches it. */
  listener (handler: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => { if (!this.answered(req, res)) handler(req, res) }
  }

  /** The decision made for `raw` before Fastify routed it, if one was; handed out once. */
  take (raw: IncomingMessage): EarlyDecision | undefined {
    const early = this.decided.get(raw)
    if (early !== undefined) this.decided.delete(raw)
    return early
  }

  private answered (raw: IncomingMessage, res: ServerResponse): boolean {
    if (this.options.tracing || !plain(raw)) return false
    const startedAt = process.hrtime.bigint()
    const engine = this.options.engine()
    try {
      checkHost(raw.rawHeaders, raw.url ?? '', raw.httpVersion)
    } catch {
      return false // `onRequest` refuses it as it always has.
    }
    const ip = clientIp(raw.socket.remoteAddress, raw.headers['x-forwarded-for'], engine.config.server.trustProxy)
    const decided = decideKnown(engine, proxyDecisionInput(raw, engine, ip, this.options.thumbprint))
    if (decided instanceof PendingDecision || decided.allowed || decided.error.headers !== undefined) {
      this.decided.set(raw, { engine, decided, clientIp: ip, startedAt })
      return false
    }
    const cors = decided.route?.cors ?? null
    const before = cors === null ? null : Object.entries(responseCorsHeaders(cors, raw.headers.origin)).flat()
    writeError(res, decided.error, before, () => {
      this.options.decisions.recordRefusal(decided, raw.method ?? 'GET', res.statusCode, startedAt)
    })
    return true
  }
}
