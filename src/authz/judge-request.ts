/**
 * Judging a request that another proxy forwards itself and only asks about: forward auth on the admin
 * listener (nginx, Traefik, Envoy over HTTP, docs/forward-auth.md) and the Envoy ext_authz gRPC service
 * (docs/istio.md). Both name the original request in their own way, then come here, so the two answer
 * alike: a CORS preflight on a CORS route is let through without credentials; anything else is decided
 * by `decide()` as proxy mode decides it; an allow spends the route's rate limit, as a proxied request
 * does, and gets its re-issued token when the route re-issues.
 *
 * It knows no transport: the callers turn the verdict into an HTTP answer or a `CheckResponse`.
 */
import type { Engine } from '../decision/engine.js'
import { PendingDecision, decideKnown, decidePending, type Allow, type Decision, type DecisionInput } from '../decision/decide.js'
import { answerPreflight } from '../cors/preflight.js'
import type { RateLimiter } from '../limits/rate-limiter.js'

/** The CORS request fields of the original request: what makes it a preflight (docs/cors.md#forward-auth). */
export interface CorsFields {
  origin?: string
  requestMethod?: string
  requestHeaders?: string
}

/** What the request is answered with. */
export type Verdict =
  /** A preflight on a CORS route: let through with no identity, and these CORS fields. */
  | { kind: 'preflight', decision: Allow, cors: Record<string, string> }
  /** An allow, with the re-issued token when the route re-issues (undefined if none could be minted). */
  | { kind: 'allow', decision: Allow, reissued?: string }
  | { kind: 'deny', decision: Decision & { allowed: false } }

export interface JudgeParts {
  limits: RateLimiter
  /** The re-issued token for an allowed request, when its route re-issues (see `Reissuer.forDecision`). */
  reissue: (decision: Allow) => Promise<string> | undefined
}

/** Runs a token's first verification inside the caller's tracing span (docs/observability.md#tracing). */
export type Verifying = <T>(verify: () => Promise<T>) => Promise<T>

/**
 * The verdict on one request. Rejects only on an unexpected failure, which the caller answers as an
 * internal error. `verifying`, when tracing is on, wraps a verification that the caches could not spare.
 */
export async function judgeRequest (engine: Engine, input: DecisionInput, cors: CorsFields, parts: JudgeParts, verifying?: Verifying): Promise<Verdict> {
  const preflight = answerPreflight(engine.routes, input.method, input.target, cors.origin, cors.requestMethod, cors.requestHeaders, input.host)
  if (preflight !== null) {
    const decision: Allow = { allowed: true, route: preflight.route, path: preflight.path, query: '', token: null, scopes: [], headers: {}, audit: null }
    return { kind: 'preflight', decision, cors: preflight.headers }
  }
  const decided = decideKnown(engine, input)
  const decision = !(decided instanceof PendingDecision)
    ? decided
    : verifying === undefined || decided.miss === null ? await decidePending(decided) : await verifying(async () => await decidePending(decided))
  if (!decision.allowed) return { kind: 'deny', decision }
  const limited = await parts.limits.check(decision.route, decision.token, input.clientIp)
  if (limited !== null) return { kind: 'deny', decision: { ...decision, allowed: false, error: limited } }
  const reissuing = parts.reissue(decision)
  return reissuing === undefined ? { kind: 'allow', decision } : { kind: 'allow', decision, reissued: await reissuing }
}
