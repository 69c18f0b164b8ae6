/**
 * The decision engine, shared by the proxy and forward-auth: normalize the target, match a route,
 * extract and verify the token, apply the route's policy, and say what to forward. It knows nothing of
 * HTTP frameworks: it takes plain values and returns a plain `Decision`.
 */
import type { CompiledRoute } from './config/types.js'
import type { Engine } from './engine.js'
import { GatewayError, deny, toGatewayError } from './errors.js'
import { identityHeaders } from './forward/identity-headers.js'
import { applyPolicy } from './policy/apply-policy.js'
import { narrowScopes } from './policy/narrow-scopes.js'
import { extractToken } from './request/extract-token.js'
import { normalizeTarget } from './request/normalize-path.js'
import type { VerifiedToken } from './token/verify-token.js'

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

export async function decide (engine: Engine, input: DecisionInput): Promise<Decision> {
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

  let token: VerifiedToken | null = null
  try {
    if (route.auth !== 'none') {
      const bearer = extractToken(input.authorization)
      if (bearer === null) {
        if (route.auth === 'required') return denied(deny.tokenMissing(), route, path, query, token, input.clientIp)
      } else {
        // Known tokens, good or bad, are answered from the verifier's caches without an await.
        const checked = engine.verifier.check(bearer)
        if (checked instanceof GatewayError) return denied(checked, route, path, query, token, input.clientIp)
        token = checked instanceof Promise ? await checked : checked
      }
    }
    const scopes = applyPolicy({ policy: route.policy, clientIp: input.clientIp, token })
    return { allowed: true, route, path, query, token, scopes, headers: identityHeaders(route, token, scopes), audit: null }
  } catch (err) {
    return denied(toGatewayError(err), route, path, query, token, input.clientIp)
  }
}
