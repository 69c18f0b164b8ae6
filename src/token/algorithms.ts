/**
 * The JWS algorithms scopegate knows, in one table. Everything else is derived from it: what an issuer
 * may pin (the config schema), what the verifier can check, what may sign a re-issued token, what a
 * published-only re-issue key may declare, and which keys fit which algorithm. Only asymmetric
 * algorithms are here; `none` and HMAC are not, so they can never be pinned, verified or signed with.
 */
import type { KeyObject } from 'node:crypto'

export interface AlgorithmSpec {
  /** node:crypto digest name; null for EdDSA, which hashes internally. */
  digest: string | null
  /** node:crypto's `asymmetricKeyType` of a key that fits. */
  keyType: 'rsa' | 'ec' | 'ed25519'
  /** For EC: node:crypto's `namedCurve` of the curve the algorithm names. */
  namedCurve?: string
  /** RSASSA-PSS rather than PKCS#1 v1.5. */
  pss?: boolean
}

/** RSA keys shorter than this many bits are refused, for verifying and for signing. */
export const MIN_RSA_BITS = 2048

const SPECS = {
  RS256: { digest: 'sha256', keyType: 'rsa' },
  RS384: { digest: 'sha384', keyType: 'rsa' },
  RS512: { digest: 'sha512', keyType: 'rsa' },
  PS256: { digest: 'sha256', keyType: 'rsa', pss: true },
  PS384: { digest: 'sha384', keyType: 'rsa', pss: true },
  PS512: { digest: 'sha512', keyType: 'rsa', pss: true },
  ES256: { digest: 'sha256', keyType: 'ec', namedCurve: 'prime256v1' },
  ES384: { digest: 'sha384', keyType: 'ec', namedCurve: 'secp384r1' },
  ES512: { digest: 'sha512', keyType: 'ec', namedCurve: 'secp521r1' },
  EdDSA: { digest: null, keyType: 'ed25519' },
  // The fully-specified name (RFC 9864) of EdDSA over Ed25519.
  Ed25519: { digest: null, keyType: 'ed25519' }
} as const satisfies Readonly<Record<string, AlgorithmSpec>>

export type JwsAlgorithm = keyof typeof SPECS

/** The signature algorithms scopegate can verify, and so the only ones an issuer may pin. */
export const JWS_ALGORITHMS = Object.freeze(Object.keys(SPECS) as JwsAlgorithm[])

/** Refused with their own message: a gateway that pins these would accept forged or unsigned tokens. */
export const REFUSED_ALGORITHMS = ['none', 'HS256', 'HS384', 'HS512'] as const

/** What may sign a re-issued token (`reissue.algorithm`). */
export const REISSUE_ALGORITHMS = ['ES256', 'EdDSA', 'RS256', 'PS256'] as const satisfies readonly JwsAlgorithm[]

/**
 * What a published-only re-issue key may declare in its JWK `alg` (e.g. while migrating from RS256 to
 * ES256): every algorithm scopegate verifies, spelled as verifiers know it, so EdDSA and not its newer
 * alias Ed25519.
 */
export const PUBLISHABLE_ALGORITHMS: ReadonlySet<string> = new Set(JWS_ALGORITHMS.filter((alg) => alg !== 'Ed25519'))

/** The spec of `alg`, or undefined for an algorithm scopegate does not know (`none`, `HS256`, a typo). */
export function algorithmSpec (alg: string): AlgorithmSpec | undefined {
  return Object.hasOwn(SPECS, alg) ? SPECS[alg as JwsAlgorithm] : undefined
}

/** Whether `key` (public or private) can sign or verify with `alg`: null if it can, else why not. */
export function keyFitsAlgorithm (alg: string, key: KeyObject): string | null {
  const spec = algorithmSpec(alg)
  if (spec === undefined) return `algorithm ${alg} is not supported`
  const type = key.asymmetricKeyType
  const details = key.asymmetricKeyDetails ?? {}
  switch (spec.keyType) {
    case 'ec':
      return type === 'ec' && details.namedCurve === spec.namedCurve ? null : `${alg} needs an EC key on curve ${spec.namedCurve ?? '?'}`
    case 'ed25519':
      return type === 'ed25519' ? null : `${alg} needs an Ed25519 key`
    case 'rsa':
      if (type !== 'rsa') return `${alg} needs an RSA key${type === 'rsa-pss' ? ' without RSA-PSS parameters' : ''}`
      return (details.modulusLength ?? 0) >= MIN_RSA_BITS ? null : `RSA keys must be at least ${MIN_RSA_BITS} bits`
  }
}
