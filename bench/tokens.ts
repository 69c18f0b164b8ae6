/**
 * Tokens for the benchmark: one RS256 and one ES256 key, a JWKS server for them in the bench process,
 * and minting with node:crypto directly, so 100,000 distinct tokens take seconds, not minutes.
 */
import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export type Alg = 'RS256' | 'ES256'

interface BenchKey { alg: Alg, kid: string, privateKey: KeyObject, publicKey: KeyObject, jwk: Record<string, unknown> }

function makeKey (alg: Alg, generation = 0): BenchKey {
  const { privateKey, publicKey } = alg === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const kid = generation === 0 ? `bench-${alg.toLowerCase()}` : `bench-${alg.toLowerCase()}-${generation}`
  return { alg, kid, privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } }
}

export interface Issuer {
  url: string
  close (): Promise<void>
  mint (alg: Alg, claims: Record<string, unknown>): string
  /** The public key tokens of `alg` are signed with now, as PEM (SPKI): for verifiers without JWKS. */
  publicKeyPem (alg: Alg): string
  /**
   * A key rotation: a new `alg` key with a new kid signs from now on; the JWKS publishes it beside the
   * previous ones until `retire`.
   */
  rotate (alg: Alg): void
  /** Stop publishing every `alg` key but the current one (tokens signed with them no longer verify). */
  retire (alg: Alg): void
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/** The bench issuer's RFC 7662 endpoint (docs/opaque-tokens.md): every token is active, with `introspected` as its claims. */
export const INTROSPECTION_PATH = '/introspect'

/** `introspected`: the claims of the active answer POST /introspect gives for any token. */
export async function startIssuer (introspected: Record<string, unknown> = {}): Promise<Issuer> {
  const keys = { RS256: makeKey('RS256'), ES256: makeKey('ES256') }
  /** Keys still published after a rotation, until retired. */
  let previous: BenchKey[] = []
  let generation = 0
  const server: Server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === INTROSPECTION_PATH) {
      req.resume()
      const now = Math.floor(Date.now() / 1000)
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ active: true, iss: url, iat: now, exp: now + 3600, ...introspected }))
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [keys.RS256.jwk, keys.ES256.jwk, ...previous.map((k) => k.jwk)] }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
    mint (alg, claims) {
      const key = keys[alg]
      const now = Math.floor(Date.now() / 1000)
      const input = `${b64({ alg, kid: key.kid, typ: 'at+jwt' })}.${b64({ iss: url, iat: now, exp: now + 3600, jti: randomUUID(), ...claims })}`
      const signature = alg === 'RS256'
        ? sign('sha256', Buffer.from(input), key.privateKey)
        : sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      return `${input}.${signature.toString('base64url')}`
    },
    publicKeyPem: (alg) => keys[alg].publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    rotate (alg) {
      previous.push(keys[alg])
      keys[alg] = makeKey(alg, ++generation)
    },
    retire (alg) {
      previous = previous.filter((k) => k.alg !== alg)
    }
  }
}
