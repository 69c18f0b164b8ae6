import type { RawConfig } from './types.js'

/**
 * Bare-string `scope` / `clientId` claim alternatives become one-item lists, as `RawConfig` says: the
 * schema allows either spelling, the compiled config one.
 */
export function normalize (config: RawConfig): RawConfig {
  for (const issuer of config.issuers) {
    const claims = issuer.claims as { scope: unknown, clientId: unknown }
    if (typeof claims.scope === 'string') claims.scope = [claims.scope]
    if (typeof claims.clientId === 'string') claims.clientId = [claims.clientId]
  }
  return config
}
