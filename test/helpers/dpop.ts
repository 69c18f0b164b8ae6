/**
 * DPoP proofs for tests (RFC 9449 §4.2): a client key pair, and proofs signed with it whose every member
 * can be set, left out or spoiled, so each hostile proof is one option away from a good one.
 */
import { createHash, randomUUID } from 'node:crypto'
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTHeaderParameters } from 'jose'

export interface ProofKey {
  alg: 'ES256' | 'RS256' | 'EdDSA'
  privateKey: CryptoKey
  publicJwk: JWK
  privateJwk: JWK
  /** RFC 7638 thumbprint, as jose computes it: what a bound token carries in `cnf.jkt`. */
  jkt: string
}

export async function makeProofKey (alg: ProofKey['alg'] = 'ES256'): Promise<ProofKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true })
  const publicJwk = await exportJWK(publicKey)
  return { alg, privateKey, publicJwk, privateJwk: await exportJWK(privateKey), jkt: await calculateJwkThumbprint(publicJwk) }
}

/** The `ath` of a token: base64url SHA-256. */
export const ath = (token: string): string => createHash('sha256').update(token).digest('base64url')

export interface ProofOptions {
  htm: string
  htu: string
  /** The access token the proof presents; its hash becomes `ath` unless `claims.ath` says otherwise. */
  token: string
  /** Epoch seconds; default now. */
  iat?: number
  /** Merged over the standard claims; a member set to undefined is left out. */
  claims?: Record<string, unknown>
  /** Merged over `{typ: 'dpop+jwt', alg, jwk}`; a member set to undefined is left out. */
  header?: Record<string, unknown>
}

export async function makeProof (key: ProofKey, options: ProofOptions): Promise<string> {
  const payload = {
    jti: randomUUID(),
    htm: options.htm,
    htu: options.htu,
    iat: options.iat ?? Math.floor(Date.now() / 1000),
    ath: ath(options.token),
    ...options.claims
  }
  const header = { typ: 'dpop+jwt', alg: key.alg, jwk: key.publicJwk, ...options.header } as JWTHeaderParameters
  return new SignJWT(JSON.parse(JSON.stringify(payload)) as Record<string, unknown>).setProtectedHeader(JSON.parse(JSON.stringify(header)) as JWTHeaderParameters).sign(key.privateKey)
}

/** A JWT with this header and payload and a signature of junk: for `alg` values no key can sign (none, HS256). */
export function unsignedProof (header: Record<string, unknown>, payload: Record<string, unknown>, signature = 'c2lnbmF0dXJl'): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${part(header)}.${part(payload)}.${signature}`
}
