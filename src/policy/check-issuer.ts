import { deny } from '../shared/errors.js'
import type { PolicyInput } from './context.js'

/** A route may accept only some of the configured issuers. */
export function checkIssuer ({ policy, token }: PolicyInput): void {
  if (token === null || policy.issuers === null || policy.issuers.has(token.issuer.id)) return
  throw deny.invalidToken('token_issuer_not_allowed', 'the token issuer is not accepted on this route', `issuer ${token.issuer.id}`)
}
