/**
 * A route's policy, in the documented order (README.md, How a request is decided): network, issuer,
 * audience, client, then scope narrowing and required scopes. Each check is a plain function that passes
 * or throws a GatewayError.
 */
import { checkAudience } from './check-audience.js'
import { checkClient } from './check-client.js'
import { checkIssuer } from './check-issuer.js'
import { checkNetwork } from './check-network.js'
import type { PolicyInput } from './context.js'
import { narrowScopes } from './narrow-scopes.js'
import { requireScopes } from './require-scopes.js'

export type PolicyCheck = (input: PolicyInput) => void

type NamedChecks = ReadonlyArray<readonly [name: string, check: PolicyCheck]>

/** The checks that depend on where the request came from: their answer can change with every request. */
export const NETWORK_CHECKS: NamedChecks = [
  ['network', checkNetwork]
]

/**
 * The checks that depend on the route and the token alone, run after the network checks and before
 * narrowing. Anonymous requests (token null) pass them.
 */
export const TOKEN_CHECKS: NamedChecks = [
  ['issuer', checkIssuer],
  ['audience', checkAudience],
  ['client', checkClient]
]

/** Every check run before narrowing, in order (what `explain` shows, step by step). */
export const POLICY_CHECKS: NamedChecks = [...NETWORK_CHECKS, ...TOKEN_CHECKS]

/** Runs the policy; returns the effective (narrowed) scopes. */
export function applyPolicy (input: PolicyInput): readonly string[] {
  for (const [, check] of NETWORK_CHECKS) check(input)
  return applyTokenPolicy(input)
}

/**
 * The policy without its network check: everything that depends on the route and the token alone, so
 * its answer holds for every request that carries the same token to the same route (see decide.ts).
 */
export function applyTokenPolicy (input: PolicyInput): readonly string[] {
  for (const [, check] of TOKEN_CHECKS) check(input)
  if (input.token === null) return []
  const effective = narrowScopes(input)
  requireScopes(input.policy, effective)
  return effective
}
