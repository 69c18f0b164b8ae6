/**
 * DPoP proofs for the benchmark: one client key (ES256, what browsers and SDKs use), its thumbprint for
 * the token's `cnf.jkt`, and a pool of proofs made ahead of time, each with its own `jti`, so the load
 * generator spends nothing on signing and the gateway sees a new proof on every request.
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto'

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

export interface ProofPool {
  /** RFC 7638 thumbprint of the client key. */
  jkt: string
  /** `count` proofs of `GET htu` for `token`, made now (their `iat` starts the gateway's proof lifetime). */
  make: (htu: string, token: string, count: number) => string[]
}

export function proofPool (): ProofPool {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const { crv, x, y } = publicKey.export({ format: 'jwk' })
  const jwk = { kty: 'EC', crv, x, y }
  const jkt = createHash('sha256').update(JSON.stringify({ crv, kty: 'EC', x, y })).digest('base64url')
  const header = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk })
  return {
    jkt,
    make (htu, token, count) {
      const ath = createHash('sha256').update(token).digest('base64url')
      const iat = Math.floor(Date.now() / 1000)
      return Array.from({ length: count }, (_, i) => {
        const input = `${header}.${b64({ jti: `bench-${iat}-${i}`, htm: 'GET', htu, iat, ath })}`
        return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`
      })
    }
  }
}
