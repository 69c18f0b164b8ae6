/**
 * A route's policy, in the order of docs/config.md#policy: network, issuer, audience, client, roles, then scope
 * narrowing, required scopes and conditions (docs/policy.md). Each check is a plain function that passes or
 * throws a GatewayError.
 *
 * An optional recorder is told each stage's outcome as it runs (`scopegate explain` passes one); the
 * request path passes none, and then no step is built. The checks that run are the same either way, so
 * an explanation cannot tell a different story from a decision.
 */
import { toGatewayError, type GatewayError } from '../shared/errors.js'
import { checkAudience } from './check-audience.js'
import { checkClient } from './check-client.js'
import { checkConditions, type ConditionStep } from './check-conditions.js'
import { checkIssuer } from './check-issuer.js'
import { checkNetwork } from './check-network.js'
import { checkRoles } from './check-roles.js'
import type { PolicyInput } from './context.js'
import type { RequestFacts } from '../config/types.js'
import { narrowScopes } from './narrow-scopes.js'
import { requireScopes } from './require-scopes.js'

export type PolicyCheck = (input: PolicyInput) => void

export type PolicyCheckName = 'network' | 'issuer' | 'audience' | 'client' | 'roles'

/** One stage of the policy as it ran: a check and its failure (null: passed), or the narrowing. */
export type PolicyStep =
  | { stage: PolicyCheckName | 'require', failure: GatewayError | null }
  | { stage: 'narrow', from: readonly string[], to: readonly string[] }
  | ConditionStep

/** Told each policy stage's outcome, in order; the stage that fails is the last one told. */
export type PolicyRecorder = (step: PolicyStep) => void

type NamedChecks = ReadonlyArray<readonly [name: PolicyCheckName, check: PolicyCheck]>

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
  ['client', checkClient],
  ['roles', checkRoles]
]

/** Every check run before narrowing, in order. */
export const POLICY_CHECKS: NamedChecks = [...NETWORK_CHECKS, ...TOKEN_CHECKS]

/** Runs one check; with a recorder, tells it the outcome (a failure is still thrown). */
function run (name: PolicyCheckName, check: PolicyCheck, input: PolicyInput, record: PolicyRecorder | undefined): void {
  if (record === undefined) return check(input)
  try {
    check(input)
  } catch (err) {
    record({ stage: name, failure: toGatewayError(err) })
    throw err
  }
  record({ stage: name, failure: null })
}

/** Runs the policy; returns the effective (narrowed) scopes. */
export function applyPolicy (input: PolicyInput, record?: PolicyRecorder): readonly string[] {
  applyNetworkPolicy(input, record)
  return applyTokenPolicy(input, record)
}

/** The one part of the policy that depends on the request rather than the token: the client network. */
export function applyNetworkPolicy (input: PolicyInput, record?: PolicyRecorder): void {
  for (const [name, check] of NETWORK_CHECKS) run(name, check, input, record)
}

/**
 * The policy without its network check: everything that depends on the route and the token alone, so
 * its answer holds for every request that carries the same token to the same route (see
 * `decision/policy-outcome.ts`).
 */
export function applyTokenPolicy (input: PolicyInput, record?: PolicyRecorder): readonly string[] {
  for (const [name, check] of TOKEN_CHECKS) run(name, check, input, record)
  if (input.token === null) return []
  const effective = narrowScopes(input)
  const { policy, token } = input
  if (record === undefined) {
    requireScopes(policy, effective)
    if (policy.conditions.token.length > 0) checkConditions(policy, policy.conditions.token, token.claims, null)
    return effective
  }
  record({ stage: 'narrow', from: input.token.scopes, to: effective })
  try {
    requireScopes(input.policy, effective)
  } catch (err) {
    record({ stage: 'require', failure: toGatewayError(err) })
    throw err
  }
  record({ stage: 'require', failure: null })
  checkConditions(policy, policy.conditions.token, token.claims, null, record)
  return effective
}

/**
 * The conditions that read the request or the clock (host, method, path, client address, `now`,
 * `maxAge`): checked on every request, after everything the engine remembers per token. Anonymous
 * requests pass them, as they pass the token checks.
 */
export function applyRequestConditions (input: PolicyInput, request: RequestFacts, record?: PolicyRecorder): void {
  const { policy, token } = input
  if (token === null || policy.conditions.request.length === 0) return
  checkConditions(policy, policy.conditions.request, token.claims, request, record)
}
