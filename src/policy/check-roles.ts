import { deny } from '../shared/errors.js'
import type { PolicyInput } from './context.js'

/**
 * Roles rule (docs/policy.md, "Roles"): the token's roles must hold all (or, with `match: any`, one) of
 * `policy.roles.require`. The roles a token holds, not the scopes they grant: a route can be for `ops`
 * whatever it asks for.
 */
export function checkRoles ({ policy, token }: PolicyInput): void {
  const { require, match } = policy.roles
  if (require.length === 0 || token === null) return
  const held = token.roles
  const ok = match === 'all' ? require.every((role) => held.includes(role)) : require.some((role) => held.includes(role))
  if (!ok) {
    throw deny.conditionFailed(policy.denyStatus.scope, 'role_missing', `needs ${match} of roles [${require.join(' ')}], has [${held.join(' ')}]`)
  }
}
