import { deny } from '../shared/errors.js'
import type { PolicyInput } from './context.js'

/** The seed rule "deny every user who comes through a given application", and per-route client allow lists. */
export function checkClient ({ policy, token }: PolicyInput): void {
  if (token === null) return
  const { allow, deny: denied, denyMissing } = policy.clients
  const clientId = token.clientId
  const status = policy.denyStatus.policy
  if (clientId === null) {
    if (denyMissing || allow !== null) throw deny.policy(status, 'client_missing', 'tokens without a client id are not allowed here')
    return
  }
  if (denied.has(clientId) || (allow !== null && !allow.has(clientId))) {
    throw deny.policy(status, 'client_denied', 'this application is not allowed here', `client ${clientId}`)
  }
}
