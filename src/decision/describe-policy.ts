/**
 * A route and its policy in words, for people: `scopegate explain` prints the route's line, the status
 * page (docs/observability.md#status-page) prints both. Read from the compiled config only, so what it
 * says is what the pipeline (`decide.ts`) checks, in the order it checks it (docs/config.md, policy order).
 */
import type { CompiledPolicy, CompiledRoute, Grant } from '../config/types.js'
import { describeHostPattern } from '../routing/match-host.js'

const list = (values: Iterable<string>): string => [...values].join(', ')

/** `one of ` before a list that needs only one of its items. */
const anyOf = (match: 'all' | 'any', count: number): string => match === 'any' && count > 1 ? 'one of ' : ''

function grants (kind: string, map: ReadonlyMap<string, Grant> | null): string[] {
  if (map === null) return []
  const each = [...map].map(([name, grant]) => `${kind} ${name} grants ${grant.all ? '*' : list(grant.scopes) || 'nothing'}`)
  return [`scopes narrowed by ${kind}: ${each.join('; ')}; any other ${kind} grants nothing`]
}

function allowDeny (what: string, rule: { allow: ReadonlySet<string> | null, deny: ReadonlySet<string>, denyMissing: boolean }, missing: string): string[] {
  const lines: string[] = []
  if (rule.allow !== null) lines.push(`${what} must be one of ${list(rule.allow)}`)
  if (rule.deny.size > 0) lines.push(`denies ${what} ${list(rule.deny)}`)
  if (rule.denyMissing) lines.push(missing)
  return lines
}

/** One line per check of `policy`, in pipeline order; an empty list when it checks nothing. */
export function describePolicy (policy: CompiledPolicy): string[] {
  const { network, scopes, roles, conditions } = policy
  const lines: string[] = []
  if (network.allow !== null) lines.push(`client address must be in ${list(network.allow.cidrs)}`)
  if (network.deny !== null) lines.push(`denies client addresses in ${list(network.deny.cidrs)}`)
  if (policy.issuers !== null) lines.push(`issuer must be one of ${list(policy.issuers)}`)
  lines.push(...allowDeny('audience', policy.audience, 'denies tokens without an audience'))
  lines.push(...allowDeny('client', policy.clients, 'denies tokens without a client id'))
  if (roles.require.length > 0) lines.push(`requires role ${anyOf(roles.match, roles.require.length)}${list(roles.require)}`)
  lines.push(...grants('role', policy.grants.roles), ...grants('client', policy.grants.clients))
  if (scopes.require.length > 0) lines.push(`requires ${anyOf(scopes.match, scopes.require.length)}${list(scopes.require)}`)
  for (const condition of [...conditions.token, ...conditions.request]) lines.push(`condition: ${condition.label}`)
  return lines
}

/** The route's checks before and around its policy (auth, DPoP, rate limit), then the policy's own. */
export function describeRouteRules (route: CompiledRoute): string[] {
  const lines: string[] = []
  if (route.auth === 'none') return ['no token checked (auth: none)']
  if (route.auth === 'optional') lines.push('a token is optional; one that is sent must pass')
  if (route.requireDpop) lines.push('requires a DPoP-bound token and proof')
  lines.push(...describePolicy(route.policy))
  const limit = route.rateLimit
  if (limit !== null) lines.push(`rate limit ${limit.limit} per ${limit.windowMs / 1000}s per ${limit.key.join(' + ')} (store ${limit.store})`)
  if (route.mode === 'audit') lines.push('audit mode: denials are logged, the request is forwarded anyway')
  return lines
}

/** One line: id, path, methods, upstream, auth and mode, as `scopegate explain` prints it. */
export function describeRoute (route: CompiledRoute): string {
  return `${route.id} (${route.prefix ? 'prefix' : 'exact'} ${route.path}${route.methods === null ? '' : `, ${[...route.methods].join(' ')}`}) ` +
    `-> upstream ${route.upstream.id} ${route.upstream.base}; auth ${route.auth}, mode ${route.mode}`
}

/** The host the route answers for, in words. */
export function describeRouteHost (route: CompiledRoute): string {
  return route.host === null ? 'any host' : describeHostPattern(route.host)
}
