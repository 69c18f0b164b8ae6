/**
 * The requests `scopegate diff` adds to the given cases, so that a change is previewed even where nobody
 * wrote a case: for every route, a request with no token, and for each issuer the route accepts, a token
 * per role and per client named in any grant or list, per audience named in any list, one without an
 * audience, and one with none of these names. Each token asks for every scope the configs name, so
 * narrowing shows in the forwarded scopes.
 *
 * A generated request is built from the names in both configs, then written as claims for each config
 * with that config's claim locations, so a renamed roles claim is compared fairly.
 */
import type { ClaimSegments, CompiledConfig, CompiledIssuer, CompiledRoute, Grant } from '../config/types.js'
import type { CaseRequest } from './cases-file.js'

/** A token described by what it carries, before it is written as claims. */
export interface TokenSpec {
  iss: string
  /** Null: no `aud` claim. */
  aud: string | null
  client: string | null
  roles: readonly string[]
  scopes: readonly string[]
}

export interface GeneratedCase {
  name: string
  method: string
  path: string
  /** Null: no token. */
  token: TokenSpec | null
}

const GENERATED_SUBJECT = 'scopegate-diff'
const UNNAMED_CLIENT = 'scopegate-diff-client'

/** Every name one config's policies mention, gathered over all routes. */
interface Names {
  roles: Set<string>
  clients: Set<string>
  audiences: Set<string>
  scopes: Set<string>
}

function grantScopes (grants: ReadonlyMap<string, Grant> | null, into: Set<string>): void {
  for (const grant of grants?.values() ?? []) if (!grant.all) for (const scope of grant.scopes) into.add(scope)
}

function namesOf (configs: readonly CompiledConfig[]): Names {
  const names: Names = { roles: new Set(), clients: new Set(), audiences: new Set(), scopes: new Set() }
  for (const config of configs) {
    for (const { policy } of config.routes) {
      for (const role of policy.grants.roles?.keys() ?? []) names.roles.add(role)
      for (const client of policy.grants.clients?.keys() ?? []) names.clients.add(client)
      for (const client of [...(policy.clients.allow ?? []), ...policy.clients.deny]) names.clients.add(client)
      for (const audience of [...(policy.audience.allow ?? []), ...policy.audience.deny]) names.audiences.add(audience)
      grantScopes(policy.grants.roles, names.scopes)
      grantScopes(policy.grants.clients, names.scopes)
      for (const scope of policy.scopes.require) names.scopes.add(scope)
    }
  }
  return names
}

function acceptedIssuers (config: CompiledConfig, route: CompiledRoute): CompiledIssuer[] {
  return [...config.issuersById.values()].filter((issuer) => route.policy.issuers === null || route.policy.issuers.has(issuer.id))
}

function tokensFor (issuer: CompiledIssuer, names: Names): Array<[string, TokenSpec]> {
  const scopes = [...names.scopes].sort()
  const base: TokenSpec = { iss: issuer.issuer, aud: [...issuer.audiences][0] ?? null, client: UNNAMED_CLIENT, roles: [], scopes }
  const out: Array<[string, TokenSpec]> = [[`${issuer.id} token with no named role, client or audience`, base]]
  for (const role of [...names.roles].sort()) out.push([`${issuer.id} token with role ${role}`, { ...base, roles: [role] }])
  for (const client of [...names.clients].sort()) out.push([`${issuer.id} token of client ${client}`, { ...base, client }])
  for (const aud of [...names.audiences].sort()) out.push([`${issuer.id} token for audience ${aud}`, { ...base, aud }])
  out.push([`${issuer.id} token with no audience`, { ...base, aud: null }])
  return out
}

/** The generated requests for the routes of both configs (a route present in one only is covered too). */
export function generateCases (configs: readonly CompiledConfig[]): GeneratedCase[] {
  const names = namesOf(configs)
  const cases = new Map<string, GeneratedCase>()
  for (const config of configs) {
    for (const route of config.routes) {
      const method = route.methods === null ? 'GET' : [...route.methods][0] as string
      const at = `${route.id}: ${method} ${route.path}`
      const add = (name: string, token: TokenSpec | null): void => {
        if (!cases.has(name)) cases.set(name, { name, method, path: route.path, token })
      }
      add(`${at} with no token`, null)
      for (const issuer of acceptedIssuers(config, route)) {
        for (const [who, token] of tokensFor(issuer, names)) add(`${at} with ${who}`, token)
      }
    }
  }
  return [...cases.values()]
}

function setClaim (claims: Record<string, unknown>, path: ClaimSegments, value: unknown): void {
  let target = claims
  path.forEach((segment, i) => {
    if (i === path.length - 1) target[segment] = value
    else target = (target[segment] ??= {}) as Record<string, unknown>
  })
}

/** A generated request as one config would receive it: claims at that config's claim locations. */
export function requestFor (config: CompiledConfig, generated: GeneratedCase): CaseRequest {
  const request: CaseRequest = { method: generated.method, path: generated.path, ip: '127.0.0.1', headers: {} }
  const spec = generated.token
  if (spec === null) return request
  const issuer = config.issuersByIss.get(spec.iss)
  const paths = issuer?.claims ?? { scope: [['scope']], roles: ['roles'], clientId: [['client_id']], subject: ['sub'] }
  const claims: Record<string, unknown> = { iss: spec.iss }
  setClaim(claims, paths.subject, GENERATED_SUBJECT)
  if (spec.aud !== null) claims.aud = spec.aud
  if (spec.client !== null) setClaim(claims, paths.clientId[0] ?? ['client_id'], spec.client)
  if (spec.roles.length > 0) setClaim(claims, paths.roles, spec.roles)
  setClaim(claims, paths.scope[0] ?? ['scope'], spec.scopes.join(' '))
  claims.jti = GENERATED_SUBJECT
  return { ...request, claims }
}
