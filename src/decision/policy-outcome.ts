/**
 * What a route's policy makes of a verified token, apart from the client network: the narrowed scopes
 * and identity headers, or the denial. Nothing in it depends on the request, so the engine remembers it
 * per token, for the route it was last computed for: a cached token seen again on the same route costs
 * one WeakMap lookup and a comparison, not the policy.
 *
 * The memo belongs to one engine (`Engine.outcomes`) and is keyed by the token object, which belongs to
 * that engine's token cache: a reload builds a new engine with an empty memo, so an outcome computed under
 * the old config can never answer under the new one. Entries go with their token, when the token cache
 * drops it and nothing else holds it.
 */
import type { CompiledRoute } from '../config/types.js'
import { identityHeaders } from '../forward/identity-headers.js'
import { applyTokenPolicy, type PolicyRecorder } from '../policy/apply-policy.js'
import { toGatewayError, type GatewayError } from '../shared/errors.js'
import type { VerifiedToken } from '../token/verified-token.js'

export interface PolicyOutcome {
  route: CompiledRoute
  scopes: readonly string[]
  /** Shared by every request that uses this outcome: read, never modified. */
  headers: Readonly<Record<string, string>>
  error: GatewayError | null
}

/** The outcome computed afresh; the recorder, if any, is told each stage. */
function computeOutcome (route: CompiledRoute, token: VerifiedToken, clientIp: string, record: PolicyRecorder | undefined): PolicyOutcome {
  try {
    const scopes = applyTokenPolicy({ policy: route.policy, clientIp, token }, record)
    return { route, scopes, headers: Object.freeze(identityHeaders(route, token, scopes)), error: null }
  } catch (err) {
    return { route, scopes: [], headers: {}, error: toGatewayError(err) }
  }
}

export class PolicyOutcomes {
  private readonly byToken = new WeakMap<VerifiedToken, PolicyOutcome>()

  /**
   * The outcome of `route`'s policy for `token`: remembered, or computed and remembered. With a recorder
   * (explain), always computed, so every stage is told; the result is remembered all the same.
   */
  of (route: CompiledRoute, token: VerifiedToken, clientIp: string, record?: PolicyRecorder): PolicyOutcome {
    if (record === undefined) {
      const known = this.byToken.get(token)
      if (known?.route === route) return known
    }
    const outcome = computeOutcome(route, token, clientIp, record)
    this.byToken.set(token, outcome)
    return outcome
  }
}
