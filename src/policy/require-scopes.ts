import { deny } from '../shared/errors.js'
import type { CompiledPolicy } from '../config/types.js'

/** Required scopes are checked against the narrowed scopes, never the raw token. */
export function requireScopes (policy: CompiledPolicy, effective: readonly string[]): void {
  const { require, match } = policy.scopes
  if (require.length === 0) return
  const ok = match === 'all'
    ? require.every((s) => effective.includes(s))
    : require.some((s) => effective.includes(s))
  if (!ok) {
    throw deny.insufficientScope(policy.denyStatus.scope, require,
      `needs ${match} of [${require.join(' ')}], has [${effective.join(' ')}]`)
  }
}
