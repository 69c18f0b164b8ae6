/**
 * The decision engine, shared by the proxy and forward-auth: normalize the target, match a route,
 * extract and verify the token, apply the route's policy, and say what to forward. It knows nothing of
 * HTTP frameworks: it takes plain values and returns a plain `Decision`.
 */
import type { CompiledRoute } from '../config/types.js'
import type { Engine } from './engine.js'
import { GatewayError, deny, toGatewayError } from '../shared/errors.js'
import { identityHeaders } from '../forward/identity-headers.js'
import { applyPolicy, applyTokenPolicy } from '../policy/apply-policy.js'
import { checkNetwork } from '../policy/check-network.js'
import { narrowScopes } from '../policy/narrow-scopes.js'
import { extractToken } from '../request/extract-token.js'
import { normalizeTarget } from '../request/normalize-path.js'
import type { VerifiedToken } from '../token/verify-token.js'

export interface DecisionInput {
  method: string
  /** The raw request-target: path and query as received. */
  target: string
  /** Every Authorization header value received. */
  authorization: readonly string[]
  clientIp: string
}

interface DecisionBase {
  route: CompiledRoute | null
  /** The normalized path, or null when the target was rejected. */
  path: string | null
  token: VerifiedToken | null
  /** The narrowed scopes (empty when anonymous or denied before narrowing). */
  scopes: readonly string[]
}

export interface Allow extends DecisionBase {
  allowed: true
  route: CompiledRoute
  path: string
  /** The query as received, with its leading `?`, or ''. */
  query: string
  /** Identity headers to set (lower-case names). */
  headers: Record<string, string>
  /** In audit mode, the denial that enforce mode would have answered. */
  audit: GatewayError | null
}

export interface Deny extends DecisionBase {
  allowed: false
  error: GatewayError
}

export type Decision = Allow | Deny

/** A denial on a matched route; in audit mode, the request goes through with the denial noted. */
function denied (error: GatewayError, route: CompiledRoute, path: string, query: string, token: VerifiedToken | null, clientIp: string): Decision {
  if (route.mode !== 'audit') return { allowed: false, error, route, path, token, scopes: [] }
  // Audit mode forwards what enforce mode would deny; the upstream sees the identity that was proven, if any.
  const scopes = token === null ? [] : narrowScopes({ policy: route.policy, clientIp, token })
  return { allowed: true, route, path, query, token, scopes, headers: identityHeaders(route, token, scopes), audit: error }
}

/**
 * What a route's policy makes of a token, apart from the client network: the narrowed scopes and the
 * identity headers, or the denial. Nothing in it depends on the request, so it is kept on the verified
 * token for the route it was last computed for (`VerifiedToken.outcome`): a token seen again on the same
 * route costs a comparison, not the policy. Both the token and the route belong to one engine, so a
 * reload, which builds new ones, never sees an outcome computed under the old config.
 */
export interface PolicyOutcome {
  route: CompiledRoute
  scopes: readonly string[]
  /** Shared by every request that uses this outcome: read, never modified. */
  headers: Readonly<Record<string, string>>
  error: GatewayError | null
}

function outcomeOf (route: CompiledRoute, token: VerifiedToken, clientIp: string): PolicyOutcome {
  let outcome = token.outcome
  if (outcome?.route === route) return outcome
  try {
    const scopes = applyTokenPolicy({ policy: route.policy, clientIp, token })
    outcome = { route, scopes, headers: Object.freeze(identityHeaders(route, token, scopes)), error: null }
  } catch (err) {
    outcome = { route, scopes: [], headers: {}, error: toGatewayError(err) }
  }
  token.outcome = outcome
  return outcome
}

/** The decision once the token is known (null: anonymous). */
function settle (route: CompiledRoute, path: string, query: string, token: VerifiedToken | null, clientIp: string): Decision {
  try {
    if (token === null) {
      const scopes = applyPolicy({ policy: route.policy, clientIp, token })
      return { allowed: true, route, path, query, token, scopes, headers: identityHeaders(route, token, scopes), audit: null }
    }
    checkNetwork({ policy: route.policy, clientIp, token })
  } catch (err) {
    return denied(toGatewayError(err), route, path, query, token, clientIp)
  }
  const { scopes, headers, error } = outcomeOf(route, token, clientIp)
  if (error !== null) return denied(error, route, path, query, token, clientIp)
  return { allowed: true, route, path, query, token, scopes, headers, audit: null }
}

/**
 * The decision: at once when the token is anonymous or known to the verifier's caches, good or bad,
 * and as a promise only when it must be verified afresh (a JWKS fetch may be under way).
 */
export function decide (engine: Engine, input: DecisionInput): Decision | Promise<Decision> {
  let path: string
  let query: string
  try {
    ({ path, query } = normalizeTarget(input.target))
  } catch (err) {
    return { allowed: false, error: toGatewayError(err), route: null, path: null, token: null, scopes: [] }
  }
  const route = engine.routes.match(input.method, path)
  if (route === null) {
    return { allowed: false, error: deny.noRoute(`${input.method} ${path}`), route: null, path, token: null, scopes: [] }
  }
  const { clientIp } = input
  if (route.auth === 'none') return settle(route, path, query, null, clientIp)

  let checked: ReturnType<Engine['verifier']['check']>
  try {
    const bearer = extractToken(input.authorization, query)
    if (bearer === null) {
      return route.auth === 'required' ? denied(deny.tokenMissing(), route, path, query, null, clientIp) : settle(route, path, query, null, clientIp)
    }
    checked = engine.verifier.check(bearer)
  } catch (err) {
    return denied(toGatewayError(err), route, path, query, null, clientIp)
  }
  if (checked instanceof GatewayError) return denied(checked, route, path, query, null, clientIp)
  if (checked instanceof Promise) {
    return checked.then((token) => settle(route, path, query, token, clientIp),
      (err: unknown) => denied(toGatewayError(err), route, path, query, null, clientIp))
  }
  return settle(route, path, query, checked, clientIp)
}
