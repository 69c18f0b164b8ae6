/**
 * The token scopegate signs for `forward.authorization: reissue`: an RFC 9068 access token (`typ:
 * at+jwt`) for the route's audience, carrying only the narrowed scopes, and recording in `act` (RFC 8693
 * §4.1) the issuer and subject of the token the client presented. Its life never outlasts that token.
 */
import { randomUUID } from 'node:crypto'
import { SignJWT, type JWTPayload } from 'jose'
import type { VerifiedToken } from '../token/verify-token.js'
import type { SigningKey } from './signing-keys.js'

export interface ReissueInput {
  /** scopegate's own issuer URL (`reissue.issuer`). */
  issuer: string
  /** The route's `forward.audience` (default: its upstream's URL). */
  audience: string
  /** The client's verified token. */
  token: VerifiedToken
  /** The narrowed scopes, in the token's order: the only scopes the new token may carry. */
  scopes: readonly string[]
  /** Milliseconds since the epoch. */
  now: number
  /** `reissue.ttl`, milliseconds. */
  ttlMs: number
}

export interface ReissuedClaims extends JWTPayload {
  iss: string
  aud: string
  iat: number
  exp: number
  jti: string
  act: { iss: string, sub?: string }
  sub?: string
  client_id?: string
  scope?: string
}

/**
 * The claims of a re-issued token. `exp` is min(original exp, now + ttl), in whole seconds rounded down,
 * so it never exceeds either. `sub`, `client_id` and `scope` are left out, not sent empty, when the
 * original token has no subject or client id, or when narrowing kept no scope.
 */
export function reissueClaims (input: ReissueInput): ReissuedClaims {
  const { token } = input
  const iat = Math.floor(input.now / 1000)
  const exp = Math.min(Math.floor(token.expiresAt), Math.floor((input.now + input.ttlMs) / 1000))
  const originalSub = typeof token.claims.sub === 'string' ? token.claims.sub : token.subject
  return {
    iss: input.issuer,
    aud: input.audience,
    ...(token.subject === null ? {} : { sub: token.subject }),
    ...(token.clientId === null ? {} : { client_id: token.clientId }),
    ...(input.scopes.length === 0 ? {} : { scope: input.scopes.join(' ') }),
    act: { iss: token.issuer.issuer, ...(originalSub === null ? {} : { sub: originalSub }) },
    iat,
    exp,
    jti: randomUUID()
  }
}

/** Signs the claims with the signing key; the header names the key and the RFC 9068 type. */
export async function signReissuedToken (claims: ReissuedClaims, key: SigningKey): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' }).sign(key.privateKey)
}
