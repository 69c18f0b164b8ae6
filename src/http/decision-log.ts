/**
 * One JSON log line per decision (docs/operations.md, Decision logs): route, method, normalized path,
 * decision, reason, the principal, the effective scopes, the upstream id, the status, upstream status and
 * latency. Tokens and Authorization headers are never part of the record, so they cannot be logged. The
 * listeners (metrics among them, see `metrics.ts`) get the same record.
 *
 * This is the one line written on every request, so it is serialized here, field by field, and written
 * straight to the logger's destination in pino's own layout (level, time, the logger's bindings, the
 * fields, msg): pino's generic path (hooks, redaction, a serializer per value) cost about a third more.
 * The logger's level still decides, read on every line, so a reload that changes it applies at once.
 * The destination is looked up once, through `pino.symbols` (pino's exported handles on a logger's
 * stream and bindings); a logger without one is refused when the log is created, since a decision line
 * that cannot be written is an audit trail that silently stops.
 *
 * Answers written straight to the socket, before any request object exists (`client-errors.ts`), are
 * decisions too: `answeredOnSocket` gives each its line, with route and path null.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { pino, type Logger } from 'pino'
import type { Decision } from '../decision/decide.js'
import type { GatewayError } from '../shared/errors.js'

export interface DecisionRecord {
  route: string | null
  /** null when the request was not read far enough to have one (an answer written on the socket). */
  method: string | null
  path: string | null
  decision: 'allow' | 'deny' | 'audit_deny'
  reason: string
  /** The matched route's upstream id (labels `upstream_errors_total`); null when no route matched. */
  upstream: string | null
  status: number
  upstreamStatus: number | null
  sub: string | null
  clientId: string | null
  scopes: string
  latencyMs: number
  /** How the token was judged (`jwt`, `introspection` or `cache`); absent when there was none. Never the token. */
  tokenPath?: string
  /** Log-only detail of a denial or upstream failure (claim values, never the token). */
  detail?: string
  /** Which service asked, when it is not the proxy listener: `ext_authz` (docs/istio.md). */
  endpoint?: 'ext_authz'
  /** The request's trace and server span, when tracing is on (docs/observability.md#logs): joins the line to its trace. */
  trace_id?: string
  span_id?: string
}

export interface DecisionLog {
  /** `method`: the method decided on, when it is not the request's own (forward auth names the original). */
  record (request: FastifyRequest, reply: FastifyReply, method?: string): void
  upstreamFailed (request: FastifyRequest, error: GatewayError): void
  /** A CORS preflight scopegate answered itself on a matched route (docs/cors.md): reason `cors_preflight`, nothing upstream. */
  preflightAnswered (request: FastifyRequest): void
  /**
   * A denial answered on Node's response before Fastify made a request of it (`early-refusal.ts`): the
   * line `record` writes for the same denial (such a request has no trace: tracing turns that path off).
   */
  recordRefusal (decision: Decision, method: string, status: number, startedAt: bigint): void
  /** A denial written straight to the socket, before a request object existed (431, unparseable HTTP). */
  answeredOnSocket (error: GatewayError): void
  /** A WebSocket/Upgrade handshake, answered on the raw socket with no Fastify request (see `upgrade.ts`). */
  recordUpgrade (upgrade: UpgradeRecord): void
  /** An ext_authz Check (`grpc/ext-authz-server.ts`): no Fastify request either. */
  recordCheck (check: CheckRecord): void
}

/** What the decision line of an ext_authz Check is made of. */
export interface CheckRecord {
  /** null: refused before a decision (a CheckRequest that names no readable request). */
  decision: Decision | null
  /** The original request's method; null when it could not be read. */
  method: string | null
  /** The HTTP status answered: 200 for an allow. */
  status: number
  /** `process.hrtime.bigint()` when the Check arrived. */
  startedAt: bigint
  /** The refusal made before a decision, if any. */
  refusal?: GatewayError
  /** A CORS preflight let through (reason `cors_preflight`). */
  preflight?: boolean
  /** The Check's trace, when tracing is on (docs/observability.md#logs). */
  trace?: { traceId: string, spanId: string }
}

/** What the decision line of an upgrade handshake is made of. */
export interface UpgradeRecord {
  /** null: refused before a decision (no Host header, a conflicting subprotocol token). */
  decision: Decision | null
  method: string
  /** The status the client got (101 when the upstream switched protocols). */
  status: number
  /** `process.hrtime.bigint()` when the handshake arrived. */
  startedAt: bigint
  /** The upstream failure that answered 502/504, if any. */
  failure?: GatewayError
  /** The refusal made before or after the decision (route not open to upgrades), if any. */
  refusal?: GatewayError
}

/** Called with every finished decision, e.g. to count it in metrics. */
export type DecisionListener = (record: DecisionRecord) => void

const INFO = 30
const WARN = 40

const text = (value: string | null): string => value === null ? 'null' : JSON.stringify(value)

/** A decision line in pino's layout: `bindings` is the logger's serialized bindings (`,"service":"scopegate"`). */
export function decisionLine (level: number, time: number, bindings: string, r: DecisionRecord): string {
  return `{"level":${level},"time":${time}${bindings},"route":${text(r.route)},"method":${text(r.method)},"path":${text(r.path)}` +
    `,"decision":"${r.decision}","reason":${text(r.reason)},"upstream":${text(r.upstream)},"status":${r.status}` +
    `,"upstreamStatus":${r.upstreamStatus ?? 'null'},"sub":${text(r.sub)},"clientId":${text(r.clientId)},"scopes":${text(r.scopes)}` +
    `,"latencyMs":${r.latencyMs}${r.tokenPath === undefined ? '' : `,"tokenPath":"${r.tokenPath}"`}${r.detail === undefined ? '' : `,"detail":${text(r.detail)}`}` +
    `${r.trace_id === undefined ? '' : `,"trace_id":"${r.trace_id}","span_id":"${r.span_id ?? ''}"`}${r.endpoint === undefined ? '' : `,"endpoint":"${r.endpoint}"`},"msg":"decision"}\n`
}

type Destination = { write: (line: string) => unknown }

/** The logger's destination stream, through pino's exported symbols. Throws if it has none. */
function destinationOf (logger: Logger): Destination {
  const stream = (logger as unknown as Record<symbol, Partial<Destination> | undefined>)[pino.symbols.streamSym]
  if (typeof stream?.write !== 'function') throw new Error('the logger has no destination stream: decision lines could not be written')
  return stream as Destination
}

/** A request answered before any decision was made: no route, no token, nothing sent upstream. */
function undecided (method: string | null, reason: string, status: number, latencyMs: number): DecisionRecord {
  return {
    route: null,
    method,
    path: null,
    decision: 'deny',
    reason,
    upstream: null,
    status,
    upstreamStatus: null,
    sub: null,
    clientId: null,
    scopes: '',
    latencyMs
  }
}

/** @throws Error at once if `logger` has no destination stream to write decision lines to. */
export function createDecisionLog (logger: Logger, listeners: DecisionListener[] = []): DecisionLog {
  const stream = destinationOf(logger)
  const bindings = (logger as unknown as Record<symbol, string | undefined>)[pino.symbols.chindingsSym] ?? ''
  const upstreamFailures = new WeakMap<FastifyRequest, Outcome>()
  const emit = (record: DecisionRecord): void => {
    for (const listener of listeners) listener(record)
    const level = record.decision === 'allow' ? INFO : WARN
    if (level >= logger.levelVal) stream.write(decisionLine(level, Date.now(), bindings, record))
  }
  return {
    upstreamFailed (request, error) { upstreamFailures.set(request, error) },
    preflightAnswered (request) { upstreamFailures.set(request, PREFLIGHT) },
    answeredOnSocket (error) { emit(undecided(null, error.reason, error.status, 0)) },
    recordRefusal (decision, method, status, startedAt) { emit(recordOf(decision, method, status, startedAt, undefined)) },
    record (request, reply, method = request.method) {
      const record = recordOf(request.decision, method, reply.statusCode, request.startedAt, upstreamFailures.get(request))
      // Undefined on an admin listener without forward auth, which never calls this, hence `!= null`.
      const trace = request.trace
      if (trace != null) {
        record.trace_id = trace.traceId
        record.span_id = trace.spanId
      }
      emit(record)
    },
    recordCheck ({ decision, method, status, startedAt, refusal, preflight, trace }) {
      const record = decision === null
        ? undecided(method, refusal?.reason ?? 'request_malformed', status, 0)
        : recordOf(decision, method ?? '', status, startedAt, preflight === true ? PREFLIGHT : undefined)
      if (decision === null && refusal?.detail !== undefined) record.detail = refusal.detail
      if (trace !== undefined) {
        record.trace_id = trace.traceId
        record.span_id = trace.spanId
      }
      record.endpoint = 'ext_authz'
      emit(record)
    },
    recordUpgrade ({ decision, method, status, startedAt, failure, refusal }) {
      const record = recordOf(decision, method, status, startedAt, failure ?? refusal)
      if (refusal !== undefined) {
        // Allowed by the policy, refused as an upgrade: a denial all the same.
        record.decision = 'deny'
        record.upstreamStatus = null
      }
      emit(record)
    }
  }
}

/** The record of a finished decision; `failure` (an upstream failure or a later refusal) overrides the reason. */
/** What overrides a decision's reason in its line: an upstream failure, a later refusal, or a preflight answered here. */
type Outcome = Pick<GatewayError, 'reason' | 'detail'> | { reason: 'cors_preflight', detail?: undefined }

const PREFLIGHT: Outcome = { reason: 'cors_preflight' }

function recordOf (decision: Decision | null, method: string, status: number, startedAt: bigint, failure: Outcome | undefined): DecisionRecord {
  const latencyMs = startedAt === 0n ? 0 : Number(process.hrtime.bigint() - startedAt) / 1e6
  if (decision === null) {
    // Answered before a decision was made (framework-level errors).
    return undecided(method, failure?.reason ?? (status === 404 ? 'no_route' : 'request_malformed'), status, latencyMs)
  }
  const token = decision.token
  const error = decision.allowed ? decision.audit : decision.error
  const record: DecisionRecord = {
    route: decision.route?.id ?? null,
    method,
    path: decision.path,
    decision: decision.allowed ? (decision.audit === null ? 'allow' : 'audit_deny') : 'deny',
    reason: failure?.reason ?? error?.reason ?? 'allowed',
    upstream: decision.route?.upstream.id ?? null,
    status,
    upstreamStatus: decision.allowed && failure === undefined ? status : null,
    sub: token?.subject ?? null,
    clientId: token?.clientId ?? null,
    scopes: decision.scopes.join(' '),
    latencyMs: Math.round(latencyMs * 1000) / 1000
  }
  if (decision.tokenPath !== undefined) record.tokenPath = decision.tokenPath
  const detail = failure?.detail ?? error?.detail
  if (detail !== undefined) record.detail = detail
  return record
}
