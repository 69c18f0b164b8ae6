/**
 * The confirmation claim (`cnf`, RFC 7800) of a token: what it is bound to. Two members are read, each
 * a string or nothing:
 * - `jkt` (RFC 9449 §6.1): the thumbprint of a DPoP key; the token must come with a proof made with it
 *   (`decision/check-dpop.ts`, docs/dpop.md);
 * - `x5t#S256` (RFC 8705 §3.1): the base64url SHA-256 of a client certificate's DER; the token must come
 *   over a connection authenticated with that certificate (`decision/check-certificate-binding.ts`,
 *   docs/tls.md).
 * A member of another type binds to nothing scopegate can check, and reads as absent; the same payload
 * read from a JWT, an introspection answer or a claims file (`explain`) gives the same answer.
 */
import type { JwtPayload } from './parse-jwt.js'

export interface Confirmation {
  jkt: string | null
  x5t: string | null
}

const UNBOUND: Confirmation = Object.freeze({ jkt: null, x5t: null })

export function confirmation (payload: JwtPayload): Confirmation {
  const cnf = payload.cnf
  if (typeof cnf !== 'object' || cnf === null) return UNBOUND
  const { jkt, 'x5t#S256': x5t } = cnf as Record<string, unknown>
  return { jkt: typeof jkt === 'string' ? jkt : null, x5t: typeof x5t === 'string' ? x5t : null }
}
