/**
 * Scope narrowing: `effective = tokenScopes ∩ rolesGrant ∩ clientsGrant`. A grant map that is not
 * configured does not narrow; a principal the map does not name is granted nothing by it; `"*"` grants
 * every requested scope. The token's order is kept, so the upstream sees a stable string.
 */
import type { Grant } from '../config/types.js'
import type { PolicyInput } from './context.js'

/** What a grant map allows for these names; null (no narrowing) when some name is granted `"*"`. */
function granted (map: ReadonlyMap<string, Grant>, names: readonly string[]): Set<string> | null {
  const scopes = new Set<string>()
  for (const name of names) {
    const grant = map.get(name)
    if (grant === undefined) continue
    if (grant.all) return null
    for (const scope of grant.scopes) scopes.add(scope)
  }
  return scopes
}

export function narrowScopes ({ policy, token }: PolicyInput): readonly string[] {
  if (token === null) return []
  const { roles, clients } = policy.grants
  if (roles === null && clients === null) return token.scopes
  const byRole = roles === null ? null : granted(roles, token.roles)
  const byClient = clients === null ? null : granted(clients, token.clientId === null ? [] : [token.clientId])
  if (byRole === null && byClient === null) return token.scopes
  return token.scopes.filter((scope) => (byRole === null || byRole.has(scope)) && (byClient === null || byClient.has(scope)))
}
