import type { CompiledPolicy } from '../config/types.js'
import type { VerifiedToken } from '../token/verify-token.js'

/** What the policy checks read: the client address and, unless the request is anonymous, the verified token. */
export interface PolicyInput {
  policy: CompiledPolicy
  clientIp: string
  token: VerifiedToken | null
}
