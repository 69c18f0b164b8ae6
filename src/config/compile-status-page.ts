/**
 * The status page's settings (docs/observability.md#status-page), compiled once: off is null, and the
 * admin token becomes a `Secret`, which prints as `[redacted]` however the compiled config is logged.
 */
import { Secret } from './compile-introspection.js'
import type { CompiledStatusPage, RawStatusPage } from './types.js'

/** Characters below which an admin token is refused: a short one can be guessed over the network. */
export const MIN_TOKEN_LENGTH = 16

/** `add` reports a problem at a config path. An empty token (`${VAR:-}` with VAR unset) means none. */
export function compileStatusPage (add: (path: string, message: string) => void, raw: RawStatusPage): CompiledStatusPage | null {
  const token = raw.token ?? ''
  if (token !== '' && token.length < MIN_TOKEN_LENGTH) {
    add('server.admin.status.token', `must be at least ${MIN_TOKEN_LENGTH} characters (or empty: loopback only)`)
  }
  if (!raw.enabled) return null
  return {
    token: token === '' ? null : new Secret(token),
    recentDenials: raw.recentDenials,
    maxConnections: raw.maxConnections
  }
}
