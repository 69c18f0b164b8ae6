/**
 * What a successful verification yields, and the digest that names a token in every cache. Its own
 * module so the caches (token-cache.ts, the re-issue cache) and the verifier can all use it without
 * importing one another. The token layer knows nothing of routes or decisions: what a route's policy
 * makes of a token is remembered by the decision engine (see `decision/policy-outcome.ts`).
 */
import { hash } from 'node:crypto'
import type { CompiledIssuer } from '../config/types.js'
import type { KeyEntry } from '../keys/import-jwk.js'
import type { IdentityClaims } from './claims.js'
import type { JwtPayload } from './parse-jwt.js'

export interface VerifiedToken extends IdentityClaims {
  issuer: CompiledIssuer
  /** The whole payload where the config needs it (`CompiledConfig.keepClaims`), otherwise empty. */
  claims: JwtPayload
  /** `exp`, seconds since the epoch. */
  expiresAt: number
  /**
   * The key the signature verified with. Null only for a token taken from a claims file by
   * `scopegate explain --claims`, which checks no signature and is never cached.
   */
  key: KeyEntry | null
  /** Approximate bytes held, for the cache's byte bound. */
  size: number
  /**
   * The token's `cacheKey`: names this very token (not its claims) wherever a cache needs to, without
   * holding the token itself. The string the token cache is keyed by, so it costs a reference.
   */
  digest: string
  /**
   * The RFC 7638 thumbprint the token is bound to (`cnf.jkt`, RFC 9449 §6.1), or null for a token that is
   * not DPoP-bound: such a token must come with a proof made with that key (docs/dpop.md).
   */
  jkt: string | null
  /**
   * The SHA-256 thumbprint of the client certificate the token is bound to (`cnf.x5t#S256`, RFC 8705
   * §3.1), or null: such a token must come over a connection authenticated with that certificate (docs/tls.md).
   */
  x5t: string | null
}

/**
 * The caches' key for a token: its SHA-256. A cache entry then holds 44 bytes of key instead of the
 * token (typically 700 bytes or more), and collision resistance keeps one token from ever being taken for
 * another. About a microsecond per request.
 */
export function cacheKey (token: string): string {
  return hash('sha256', token, 'base64')
}

/**
 * A VerifiedToken built field by field, never by spreading: every token then shares one hidden class.
 * Built with `{ ...identity, … }`, each cached token carried a hidden class and descriptor array of its
 * own, about 400 bytes per entry (measured in a heap snapshot of a full cache).
 */
export function verifiedToken (identity: IdentityClaims, issuer: CompiledIssuer, claims: JwtPayload, expiresAt: number, key: KeyEntry | null,
  size: number, digest: string, jkt: string | null = null, x5t: string | null = null): VerifiedToken {
  return {
    subject: identity.subject,
    clientId: identity.clientId,
    scopes: identity.scopes,
    roles: identity.roles,
    audiences: identity.audiences,
    issuer,
    claims,
    expiresAt,
    key,
    size,
    digest,
    jkt,
    x5t
  }
}
