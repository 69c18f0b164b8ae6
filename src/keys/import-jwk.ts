/**
 * Decides which keys of a fetched JWKS may verify tokens. A key is skipped, with a reason for the log,
 * when it is for encryption, carries private members, is symmetric, is too weak, or when its declared
 * `alg` does not fit its type. What is kept is a ready `KeyObject`, so verification does no parsing.
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import { JWS_ALGORITHMS, MIN_RSA_BITS, keyFitsAlgorithm } from '../token/algorithms.js'

export interface KeyEntry {
  /** '' when the JWK has no kid. */
  kid: string
  key: KeyObject
  /** The algorithms this key may verify: its own `alg`, or every algorithm that fits its type. */
  algorithms: ReadonlySet<string>
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

export type ImportResult = { ok: true, entry: KeyEntry } | { ok: false, reason: string }

export function importJwk (jwk: unknown): ImportResult {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return { ok: false, reason: 'not an object' }
  const k = jwk as Record<string, unknown>
  const kid = typeof k.kid === 'string' ? k.kid : ''
  if (k.kid !== undefined && typeof k.kid !== 'string') return { ok: false, reason: 'kid is not a string' }
  if (k.kty !== 'RSA' && k.kty !== 'EC' && k.kty !== 'OKP') return { ok: false, reason: `kty ${String(k.kty)} is not an asymmetric signing key type` }
  if (k.use !== undefined && k.use !== 'sig') return { ok: false, reason: `use is ${String(k.use)}` }
  if (k.key_ops !== undefined && !(Array.isArray(k.key_ops) && k.key_ops.includes('verify'))) return { ok: false, reason: 'key_ops lacks verify' }
  if (PRIVATE_MEMBERS.some((m) => m in k)) return { ok: false, reason: 'has private key members' }

  let key: KeyObject
  try {
    // Only the public members are handed over, so a stray member cannot change what is imported.
    const members = k.kty === 'RSA' ? { kty: k.kty, n: k.n, e: k.e } : { kty: k.kty, crv: k.crv, x: k.x, y: k.y }
    key = createPublicKey({ key: members as import('node:crypto').JsonWebKey, format: 'jwk' })
  } catch (err) {
    return { ok: false, reason: `not a valid public key (${(err as Error).message})` }
  }
  if (k.kty === 'RSA' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    return { ok: false, reason: `RSA key shorter than ${MIN_RSA_BITS} bits` }
  }

  let algorithms: string[]
  if (k.alg !== undefined) {
    if (typeof k.alg !== 'string' || keyFitsAlgorithm(k.alg, key) !== null) return { ok: false, reason: `alg ${String(k.alg)} does not fit kty ${k.kty}` }
    algorithms = [k.alg]
  } else {
    algorithms = JWS_ALGORITHMS.filter((alg) => keyFitsAlgorithm(alg, key) === null)
    if (algorithms.length === 0) return { ok: false, reason: `no supported algorithm for kty ${k.kty} crv ${String(k.crv)}` }
  }
  return { ok: true, entry: { kid, key, algorithms: new Set(algorithms) } }
}
