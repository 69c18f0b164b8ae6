/**
 * The one error type of the request path. Every denial and every failure a client can cause or see is a
 * `GatewayError`: a stable `code` (the OAuth `error` value, see docs/responses.md), the HTTP status, a stable
 * `reason` for logs and metrics, a public description that is safe to send, and a log-only detail.
 * Nothing else reaches a client: see `http/reply-error.ts`, the one place that turns it into a reply.
 */

/** The public `error` values, each documented in docs/responses.md. */
export type ErrorCode =
  | 'unauthorized'
  | 'invalid_request'
  | 'invalid_token'
  | 'end_users_not_allowed'
  | 'insufficient_scope'
  | 'no_route'
  | 'rate_limited'
  | 'request_header_fields_too_large'
  | 'expectation_failed'
  | 'temporarily_unavailable'
  | 'bad_gateway'
  | 'gateway_timeout'
  | 'server_error'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'

/** Stable, finer-grained reason ids: one per check that can fail. Used in logs and metric labels. */
export type Reason =
  | 'token_missing'
  | 'authorization_malformed'
  | 'authorization_duplicated'
  | 'token_duplicated'
  | 'host_duplicated'
  | 'host_mismatch'
  | 'path_invalid'
  | 'no_route'
  | 'token_malformed'
  | 'token_issuer_unknown'
  | 'token_issuer_not_allowed'
  | 'token_algorithm_not_allowed'
  | 'token_key_unknown'
  | 'token_signature_invalid'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'token_issued_in_future'
  | 'token_claim_invalid'
  | 'token_type_invalid'
  | 'token_audience_invalid'
  | 'keys_unavailable'
  | 'token_inactive'
  | 'introspection_unavailable'
  | 'network_denied'
  | 'audience_denied'
  | 'audience_missing'
  | 'client_denied'
  | 'client_missing'
  | 'scope_insufficient'
  | 'role_missing'
  | 'condition_failed'
  | 'rate_limited'
  | 'rate_limit_unavailable'
  | 'headers_too_large'
  | 'request_malformed'
  | 'expectation_unsupported'
  | 'upgrade_not_allowed'
  | 'authorization_conflict'
  | 'upstream_refused'
  | 'upstream_reset'
  | 'upstream_tls'
  | 'upstream_timeout'
  | 'internal'
  | 'dpop_proof_missing'
  | 'dpop_proof_duplicated'
  | 'dpop_proof_invalid'
  | 'dpop_proof_replayed'
  | 'dpop_nonce_required'
  | 'dpop_binding_mismatch'
  | 'dpop_required'
  | 'dpop_bound_token_as_bearer'
  | 'dpop_replay_store_unavailable'
  | 'certificate_missing'
  | 'certificate_binding_mismatch'
  | 'certificate_binding_required'
  | 'certificate_malformed'

export interface GatewayErrorOptions {
  /** Log-only detail: may name claim values, never the token. */
  detail?: string
  /** `scope="…"` of WWW-Authenticate, for insufficient_scope. */
  scope?: string
  /** Seconds, for 503 and 429 `Retry-After`. */
  retryAfter?: number
  /** Extra response fields of the denial (lower-case names): the 429's `RateLimit` and `RateLimit-Policy`. */
  headers?: Readonly<Record<string, string>>
  /** Challenge with the DPoP scheme rather than Bearer (docs/dpop.md). */
  dpop?: DpopChallenge
  cause?: unknown
}

/** What a `WWW-Authenticate: DPoP` challenge carries beside the error (RFC 9449 §7.1, §9). */
export interface DpopChallenge {
  /** `algs="…"`: the proof algorithms accepted, space-separated. */
  algs: string
  /** A fresh server nonce, sent as the `DPoP-Nonce` header with `use_dpop_nonce`. */
  nonce?: string
}

/**
 * The base of GatewayError: an Error (`instanceof Error`, `Error.prototype` methods) whose construction
 * never runs Error's constructor, so no stack trace is captured. A denial is an expected outcome, not a
 * bug: capturing a stack would be most of its cost on the hot path (about 12% of a 401's CPU), and no
 * stack is ever shown. An internal error keeps its cause, which carries the stack that matters. Unlike
 * lowering `Error.stackTraceLimit` around `super()`, this touches no global state.
 */
const StacklessError = function StacklessError (this: Error, message: string, options?: ErrorOptions) {
  Object.defineProperty(this, 'message', { value: message, writable: true, configurable: true })
  if (options?.cause !== undefined) Object.defineProperty(this, 'cause', { value: options.cause, writable: true, configurable: true })
} as unknown as new (message: string, options?: ErrorOptions) => Error
Object.setPrototypeOf(StacklessError.prototype, Error.prototype)

export class GatewayError extends StacklessError {
  readonly code: ErrorCode
  readonly status: number
  readonly reason: Reason
  /** Safe to send to the client. A fixed text per reason: it never echoes client input. */
  readonly description: string
  readonly detail: string | undefined
  readonly scope: string | undefined
  readonly retryAfter: number | undefined
  readonly headers: Readonly<Record<string, string>> | undefined
  readonly dpop: DpopChallenge | undefined

  constructor (status: number, code: ErrorCode, reason: Reason, description: string, options: GatewayErrorOptions = {}) {
    super(description, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'GatewayError'
    this.status = status
    this.code = code
    this.reason = reason
    this.description = description
    this.detail = options.detail
    this.scope = options.scope
    this.retryAfter = options.retryAfter
    this.headers = options.headers
    this.dpop = options.dpop
  }
}

/** Constructors for each row of the response table (docs/responses.md), so call sites read as the table does. */
export const deny = {
  tokenMissing: () =>
    new GatewayError(401, 'unauthorized', 'token_missing', 'a bearer token is required'),
  badRequest: (reason: Reason, description: string, detail?: string) =>
    new GatewayError(400, 'invalid_request', reason, description, { detail }),
  invalidToken: (reason: Reason, description: string, detail?: string, cause?: unknown) =>
    new GatewayError(401, 'invalid_token', reason, description, { detail, cause }),
  policy: (status: number, reason: Reason, description: string, detail?: string) =>
    new GatewayError(status, 'end_users_not_allowed', reason, description, { detail }),
  insufficientScope: (status: number, required: readonly string[], detail?: string) =>
    new GatewayError(status, 'insufficient_scope', 'scope_insufficient',
      'the token does not grant the scopes this route requires', { scope: required.join(' '), detail }),
  /** A role or a condition of the route's policy (docs/policy.md) is not met: the same answer as a missing scope. */
  conditionFailed: (status: number, reason: Reason, detail?: string) =>
    new GatewayError(status, 'insufficient_scope', reason, 'the token does not meet this route\'s conditions', { detail }),
  noRoute: (detail?: string) =>
    new GatewayError(404, 'no_route', 'no_route', 'no route matches this request', { detail }),
  keysUnavailable: (retryAfter: number, detail?: string) =>
    new GatewayError(503, 'temporarily_unavailable', 'keys_unavailable',
      'the token issuer\'s keys are temporarily unavailable', { retryAfter, detail }),
  rateLimited: (retryAfter: number, headers: Readonly<Record<string, string>>, detail?: string) =>
    new GatewayError(429, 'rate_limited', 'rate_limited', 'too many requests; retry later', { retryAfter, headers, detail }),
  /** The shared rate-limit store did not answer and the route fails closed (docs/rate-limits.md). */
  rateLimitUnavailable: (detail?: string) =>
    new GatewayError(503, 'temporarily_unavailable', 'rate_limit_unavailable', 'the rate limit cannot be checked; retry later', { retryAfter: 1, detail }),
  internal: (detail?: string, cause?: unknown) =>
    new GatewayError(500, 'server_error', 'internal', 'internal error', { detail, cause })
} as const

/** Anything thrown that is not a GatewayError becomes a generic server_error: its message stays in the log. */
export function toGatewayError (err: unknown): GatewayError {
  if (err instanceof GatewayError) return err
  return deny.internal(err instanceof Error ? err.message : String(err), err)
}
