/**
 * JWS signature verification with node:crypto and a prepared `KeyObject`: synchronous, and about three
 * times cheaper than a WebCrypto round trip. Only the asymmetric algorithms a config may pin are known
 * here; `none` and HMAC are not, so they can never verify.
 */
import { constants, verify, type KeyObject } from 'node:crypto'

interface AlgorithmSpec {
  /** node:crypto digest name; null for EdDSA, which hashes internally. */
  digest: string | null
  kty: 'RSA' | 'EC' | 'OKP'
  /** For EC: the curve; for OKP: the subtype. */
  curve?: string
  pss?: boolean
}

const ALGORITHMS: Readonly<Record<string, AlgorithmSpec>> = {
  RS256: { digest: 'sha256', kty: 'RSA' },
  RS384: { digest: 'sha384', kty: 'RSA' },
  RS512: { digest: 'sha512', kty: 'RSA' },
  PS256: { digest: 'sha256', kty: 'RSA', pss: true },
  PS384: { digest: 'sha384', kty: 'RSA', pss: true },
  PS512: { digest: 'sha512', kty: 'RSA', pss: true },
  ES256: { digest: 'sha256', kty: 'EC', curve: 'P-256' },
  ES384: { digest: 'sha384', kty: 'EC', curve: 'P-384' },
  ES512: { digest: 'sha512', kty: 'EC', curve: 'P-521' },
  EdDSA: { digest: null, kty: 'OKP', curve: 'Ed25519' },
  Ed25519: { digest: null, kty: 'OKP', curve: 'Ed25519' }
}

/** The signature algorithms scopegate can verify, and so the only ones a config may pin. */
export const SUPPORTED_ALGORITHMS: readonly string[] = Object.keys(ALGORITHMS)

/** Whether a JWK of this kty / crv can verify this alg. */
export function keyFitsAlgorithm (alg: string, kty: unknown, crv: unknown): boolean {
  const spec = ALGORITHMS[alg]
  if (spec === undefined || spec.kty !== kty) return false
  return spec.curve === undefined || spec.curve === crv
}

/** Verify a JWS signature. Returns false, never throws, for a signature that does not fit the key. */
export function verifySignature (alg: string, key: KeyObject, signingInput: string, signature: Buffer): boolean {
  const spec = ALGORITHMS[alg]
  if (spec === undefined) return false
  try {
    if (spec.kty === 'EC') {
      return verify(spec.digest, Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' }, signature)
    }
    if (spec.pss === true) {
      return verify(spec.digest, Buffer.from(signingInput),
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, signature)
    }
    return verify(spec.digest, Buffer.from(signingInput), key, signature)
  } catch {
    return false
  }
}
