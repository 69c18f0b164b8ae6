import { deny } from '../shared/errors.js'
import type { PolicyInput } from './context.js'

/** Location rule: the client address must not be denied and, when an allow list exists, must be on it. */
export function checkNetwork ({ policy, clientIp }: PolicyInput): void {
  const { allow, deny: denied } = policy.network
  if ((denied !== null && denied.has(clientIp)) || (allow !== null && !allow.has(clientIp))) {
    throw deny.policy(policy.denyStatus.policy, 'network_denied', 'requests from this network are not allowed', `client ip ${clientIp}`)
  }
}
