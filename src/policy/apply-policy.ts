/**
 * A route's policy, in the order of docs/config.md#policy: network, issuer, audience, client, then scope narrowing and
 * required scopes. Each check is a plain function that passes or throws a GatewayError.
 */
import { checkAudience } from './check-audience.js'
import { checkClient } from './check-client.js'
import { checkIssuer } from './check-issuer.js'
import { checkNetwork } from './check-network.js'
import type { PolicyInput } from './context.js'
import { narrowScopes } from './narrow-scopes.js'
import { requireScopes } from './require-scopes.js'

export type PolicyCheck = (input: PolicyInput) => void

/** The checks run before narrowing, in order. Anonymous requests (token null) pass the token checks. */
export const POLICY_CHECKS: ReadonlyArray<readonly [name: string, check: PolicyCheck]> = [
  ['network', checkNetwork],
  ['issuer', checkIssuer],
  ['audience', checkAudience],
  ['client', checkClient]
]

const TOKEN_CHECKS = POLICY_CHECKS.filter(([name]) => name !== 'network').map(([, check]) => check)

/** Runs the policy; returns the effective (narrowed) scopes. */
export function applyPolicy (input: PolicyInput): readonly string[] {
  checkNetwork(input)
  return applyTokenPolicy(input)
}

/**
 * The policy without its network check: everything that depends on the route and the token alone, so
 * its answer holds for every request that carries the same token to the same route (see decide.ts).
 */
export function applyTokenPolicy (input: PolicyInput): readonly string[] {
  for (const check of TOKEN_CHECKS) check(input)
  if (input.token === null) return []
  const effective = narrowScopes(input)
  requireScopes(input.policy, effective)
  return effective
}
