/**
 * An upstream that does what the docs tell upstreams to do with a re-issued token: verify it with jose's
 * `createRemoteJWKSet` against scopegate's admin `/.well-known/jwks.json`, pinning issuer, audience, typ
 * and algorithm. It answers 401 when verification fails and records every request either way.
 */
import http from 'node:http'
import { createRemoteJWKSet, jwtVerify, type JWTPayload, type ProtectedHeaderParameters } from 'jose'
import { closeServer, listenLocal, trackSockets } from '../helpers/echo-upstream.js'

export interface Seen {
  url: string
  /** The Authorization header as received, or undefined. */
  authorization: string | undefined
  /** The x-auth-scopes header as received. */
  scopes: string | undefined
  verified?: { header: ProtectedHeaderParameters, payload: JWTPayload }
  /** jose's error code when verification failed. */
  error?: string
}

export interface Trust {
  /** scopegate's admin JWKS URL. */
  jwksUrl: string
  issuer: string
  /** Audiences this upstream accepts (any one). */
  audiences: string[]
  algorithms?: string[]
  /** The verifier's clock, for tests that move scopegate's. */
  currentDate?: () => Date
}

export interface VerifyingUpstream {
  url: string
  seen: Seen[]
  /** Configures verification; until called, every request with a token is refused. */
  trust: (trust: Trust) => void
  close: () => Promise<void>
}

export async function startVerifyingUpstream (): Promise<VerifyingUpstream> {
  const seen: Seen[] = []
  let verify: ((jwt: string) => Promise<Seen['verified']>) | null = null

  const server = http.createServer((req, res) => {
    req.resume()
    const authorization = req.headers.authorization
    const record: Seen = { url: req.url ?? '', authorization, scopes: req.headers['x-auth-scopes'] as string | undefined }
    const answer = (status: number): void => {
      seen.push(record)
      const body = JSON.stringify(record)
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
    }
    if (authorization === undefined) { answer(200); return }
    const jwt = /^Bearer (\S+)$/.exec(authorization)?.[1]
    if (jwt === undefined || verify === null) { record.error = 'no_verifier_or_not_bearer'; answer(401); return }
    verify(jwt).then((verified) => { record.verified = verified; answer(200) }, (err: { code?: string, message: string }) => {
      record.error = err.code ?? err.message
      answer(401)
    })
  })
  const sockets = trackSockets(server)
  const port = await listenLocal(server)

  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    trust (trust) {
      const jwks = createRemoteJWKSet(new URL(trust.jwksUrl))
      verify = async (jwt) => {
        const { protectedHeader, payload } = await jwtVerify(jwt, jwks, {
          issuer: trust.issuer,
          audience: trust.audiences,
          typ: 'at+jwt',
          algorithms: trust.algorithms ?? ['ES256'],
          requiredClaims: ['iat', 'exp', 'jti'],
          ...(trust.currentDate === undefined ? {} : { currentDate: trust.currentDate() })
        })
        return { header: protectedHeader, payload }
      }
    },
    close: () => closeServer(server, sockets)
  }
}
