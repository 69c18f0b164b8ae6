/**
 * The RFC 7638 thumbprint of a public JWK: SHA-256 over the key's required members only, in
 * lexicographic order, as JSON without whitespace, base64url. It is what a DPoP-bound token names in
 * `cnf.jkt` (RFC 9449 §6.1). Synchronous (node:crypto), unlike jose's WebCrypto version, so a proof is
 * checked without a promise. Members other than the required ones never change the thumbprint.
 */
import { hash } from 'node:crypto'

/** The required members per key type (RFC 7638 §3.2, RFC 8037 §2 for OKP), already in lexicographic order. */
const REQUIRED: Readonly<Record<string, readonly string[]>> = {
  EC: ['crv', 'kty', 'x', 'y'],
  RSA: ['e', 'kty', 'n'],
  OKP: ['crv', 'kty', 'x']
}

/** The thumbprint, or null when the key type is not one a proof may use or a required member is not a string. */
export function jwkThumbprint (jwk: Readonly<Record<string, unknown>>): string | null {
  const members = typeof jwk.kty === 'string' ? REQUIRED[jwk.kty] : undefined
  if (members === undefined) return null
  const parts: string[] = []
  for (const name of members) {
    const value = jwk[name]
    if (typeof value !== 'string') return null
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(value)}`)
  }
  return hash('sha256', `{${parts.join(',')}}`, 'base64url')
}
