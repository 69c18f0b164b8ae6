import { deny } from '../shared/errors.js'
import type { PolicyInput } from './context.js'

/**
 * The seed rule "deny every user when the audience is a given API or missing" (401
 * end_users_not_allowed), and the route's accepted audiences (401 invalid_token, as a token minted for
 * another API is simply not a valid token here).
 */
export function checkAudience ({ policy, token }: PolicyInput): void {
  if (token === null) return
  const { allow, deny: denied, denyMissing } = policy.audience
  const audiences = token.audiences
  if (audiences === null) {
    if (denyMissing) throw deny.policy(policy.denyStatus.policy, 'audience_missing', 'tokens without an audience are not allowed here')
    // With denyMissing turned off, a token without `aud` still cannot satisfy an allow list.
    if (allow !== null) throw deny.invalidToken('token_audience_invalid', 'the token audience is not accepted on this route', 'no aud')
    return
  }
  const hit = audiences.find((a) => denied.has(a))
  if (hit !== undefined) {
    throw deny.policy(policy.denyStatus.policy, 'audience_denied', 'tokens for this audience are not allowed here', `aud ${hit}`)
  }
  if (allow !== null && !audiences.some((a) => allow.has(a))) {
    throw deny.invalidToken('token_audience_invalid', 'the token audience is not accepted on this route', `aud ${audiences.join(' ')}`)
  }
}
