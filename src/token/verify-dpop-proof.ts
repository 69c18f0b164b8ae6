/**
 * Checks a DPoP proof (RFC 9449 §4.3) against the request it came with and the access token it presents.
 * Every check of §4.3 is here, in its order: exactly one well-formed JWT; `typ` `dpop+jwt`; an asymmetric
 * `alg` from `dpop.algorithms`; a `jwk` header that is a public key, fits the algorithm and verifies the
 * signature; `jti`, `htm`, `htu`, `iat` present; `htm` and `htu` the request's own method and URL; `iat`
 * within `dpop.proofLifetime` (and no more than `dpop.clockSkew` ahead); `ath` the hash of the token; the
 * server nonce when nonces are on. What a proof does not decide is left to the caller: whether its key
 * is the one the token is bound to (`cnf.jkt`), and whether its `jti` was seen before (`dpop-replay.ts`).
 *
 * `htu` is compared after normalization (RFC 9449 §4.3 point 9): the WHATWG URL parser lower-cases scheme
 * and host and drops a default port, and the path goes through the same canonical form as the request's
 * (`normalize-path.ts`); query and fragment are ignored. Synchronous: node:crypto verifies, no promise.
 * See docs/dpop.md.
 */
import { hash } from 'node:crypto'
import type { CompiledDpop } from '../config/types.js'
import { importJwk, type KeyEntry } from '../keys/import-jwk.js'
import { normalizeTarget } from '../request/normalize-path.js'
import { GatewayError, type Reason } from '../shared/errors.js'
import { jwkThumbprint } from './dpop-thumbprint.js'
import type { DpopNonces } from './dpop-nonce.js'
import { parseJwt } from './parse-jwt.js'
import { verifySignature } from './verify-signature.js'

/** What the proof is checked against: the request as received. */
export interface ProofRequest {
  /** Every `DPoP` header value received. */
  proofs: readonly string[]
  method: string
  /** `scheme://host[:port]` of the request as received (see `request-origin.ts`); null when unknown. */
  origin: string | null
  /** The normalized path the request was decided on. */
  path: string
  /** The access token of `Authorization: DPoP <token>`. */
  token: string
}

/** A proof that passed: what the binding and replay checks need. */
export interface VerifiedProof {
  /** RFC 7638 thumbprint of the proof key, compared with the token's `cnf.jkt`. */
  jkt: string
  jti: string
  /** Milliseconds since the epoch until which the proof's `iat` is inside the window: the replay entry's life. */
  acceptableUntil: number
}

/** `jti` longer than this is refused: the replay store keeps a hash, but the proof is parsed whole. */
const MAX_JTI = 256

/** A proof header longer than this is refused before it is parsed (a P-521 or RSA-4096 proof is well under). */
const MAX_PROOF = 4096

/** Members only a private (or symmetric) JWK has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

/**
 * Imported proof keys by thumbprint. A client signs every proof with the same key, and importing a JWK
 * costs several times the signature check (about 240 µs against 60 µs for P-256, measured), so a key is
 * imported once. The thumbprint covers every public member, so one thumbprint is one key. Bounded:
 * emptied when full.
 */
const proofKeys = new Map<string, KeyEntry>()
const PROOF_KEYS_MAX = 4096

/** The proof key, imported from its public members only (`alg`, `use`, `key_ops` of a proof's jwk mean nothing), or why not. */
function proofKey (jkt: string, jwk: Readonly<Record<string, unknown>>): KeyEntry | string {
  let entry = proofKeys.get(jkt)
  if (entry === undefined) {
    const imported = importJwk({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, n: jwk.n, e: jwk.e })
    if (!imported.ok) return imported.reason
    entry = imported.entry
    if (proofKeys.size >= PROOF_KEYS_MAX) proofKeys.clear()
    proofKeys.set(jkt, entry)
  }
  return entry
}

/** 401 `invalid_dpop_proof` with a DPoP challenge. Fixed descriptions: nothing from the proof is echoed. */
export function invalidProof (dpop: CompiledDpop, reason: Reason, description: string, detail?: string): GatewayError {
  return new GatewayError(401, 'invalid_dpop_proof', reason, description, { detail, dpop: { algs: dpop.algs } })
}

const INVALID = 'the DPoP proof is not valid'

function fail (dpop: CompiledDpop, detail: string): GatewayError {
  return invalidProof(dpop, 'dpop_proof_invalid', INVALID, detail)
}

/** The origin and canonical path `htu` names, or null when it is not an http(s) URL with a canonical path. */
function htuParts (htu: string): { origin: string, path: string } | null {
  let url: URL
  try {
    url = new URL(htu)
  } catch {
    return null
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '') return null
  try {
    return { origin: `${url.protocol}//${url.host}`, path: normalizeTarget(url.pathname).path }
  } catch {
    return null
  }
}

/**
 * The proof's key thumbprint, `jti` and window, when every check of RFC 9449 §4.3 passes.
 *
 * @param now milliseconds since the epoch.
 * @throws GatewayError 401 `invalid_dpop_proof`, or `use_dpop_nonce` with a fresh nonce when nonces are on.
 */
export function verifyDpopProof (request: ProofRequest, dpop: CompiledDpop, now: number, nonces: DpopNonces | null): VerifiedProof {
  const { proofs } = request
  if (proofs.length === 0) throw invalidProof(dpop, 'dpop_proof_missing', 'a DPoP proof is required with a DPoP token')
  if (proofs.length > 1) throw invalidProof(dpop, 'dpop_proof_duplicated', 'more than one DPoP proof')
  const proof = (proofs[0] as string).trim()
  if (proof.length > MAX_PROOF) throw fail(dpop, `proof of ${proof.length} characters`)

  let parsed
  try {
    parsed = parseJwt(proof)
  } catch (err) {
    throw fail(dpop, `not a JWT: ${(err as GatewayError).detail ?? ''}`)
  }
  const { header, payload, signingInput, signature } = parsed
  if (header.typ !== 'dpop+jwt') throw fail(dpop, `typ ${JSON.stringify(header.typ)}`)
  const alg = header.alg
  if (typeof alg !== 'string' || !dpop.algorithms.has(alg)) throw fail(dpop, `alg ${JSON.stringify(alg)} not allowed`)
  if (header.crit !== undefined || header.b64 !== undefined) throw fail(dpop, 'crit or b64 header present')

  // The key must be public: a proof that carries the private key proves nothing about who holds it.
  const jwk = header.jwk
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw fail(dpop, 'no jwk header')
  if (PRIVATE_MEMBERS.some((member) => member in jwk)) throw fail(dpop, 'jwk: has private key members')
  const jkt = jwkThumbprint(jwk as Record<string, unknown>)
  if (jkt === null) throw fail(dpop, `jwk: kty ${JSON.stringify((jwk as Record<string, unknown>).kty)} is not an asymmetric signing key type`)
  const key = proofKey(jkt, jwk as Record<string, unknown>)
  if (typeof key === 'string') throw fail(dpop, `jwk: ${key}`)
  if (!key.algorithms.has(alg)) throw fail(dpop, `jwk does not fit alg ${alg}`)
  if (!verifySignature(alg, key.key, signingInput, signature)) throw fail(dpop, 'signature does not verify with the jwk')

  const { jti, htm, htu, iat, ath } = payload
  if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI) throw fail(dpop, 'jti missing, empty or too long')
  if (htm !== request.method) throw fail(dpop, `htm ${JSON.stringify(htm)} is not ${request.method}`)
  if (typeof htu !== 'string') throw fail(dpop, 'htu missing')
  const target = htuParts(htu)
  if (request.origin === null) throw fail(dpop, 'the request\'s own scheme and host are unknown, so htu cannot be checked')
  if (target === null || target.origin !== request.origin || target.path !== request.path) {
    throw fail(dpop, `htu does not name ${request.origin}${request.path}`)
  }
  if (typeof iat !== 'number' || !Number.isFinite(iat)) throw fail(dpop, 'iat missing')
  const iatMs = iat * 1000
  if (iatMs > now + dpop.clockSkewMs) throw fail(dpop, `iat ${iat} is in the future (now ${Math.floor(now / 1000)})`)
  const acceptableUntil = iatMs + dpop.proofLifetimeMs + dpop.clockSkewMs
  if (now > acceptableUntil) throw fail(dpop, `iat ${iat} is too old (now ${Math.floor(now / 1000)})`)
  if (typeof ath !== 'string' || ath !== hash('sha256', request.token, 'base64url')) throw fail(dpop, 'ath missing or not the token\'s hash')

  if (nonces !== null && !nonces.accepts(payload.nonce)) {
    throw new GatewayError(401, 'use_dpop_nonce', 'dpop_nonce_required', 'the DPoP proof must carry the server nonce',
      { detail: payload.nonce === undefined ? 'no nonce' : 'stale or foreign nonce', dpop: { algs: dpop.algs, nonce: nonces.current() } })
  }
  return { jkt, jti, acceptableUntil }
}
