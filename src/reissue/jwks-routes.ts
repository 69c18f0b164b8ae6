/**
 * The admin listener's key publication for re-issued tokens: `GET /.well-known/jwks.json` (public keys
 * only: every configured key, the signer first) and a minimal `GET /.well-known/openid-configuration`
 * naming it, so an upstream can point a standard JWT library at either.
 *
 * The JWKS may be cached (`public, max-age`): keys change only on reload, and a verifier that meets an
 * unknown kid refetches anyway (jose's createRemoteJWKSet does, after its cooldown). Without a reissue
 * section the JWKS is empty and there is no discovery document.
 */
import type { FastifyInstance } from 'fastify'
import type { Reissuer } from './reissuer.js'

export const JWKS_PATH = '/.well-known/jwks.json'
export const DISCOVERY_PATH = '/.well-known/openid-configuration'

export interface JwksRoutesOptions {
  /** `max-age` of both documents, seconds. */
  maxAgeSec?: number
}

export const JWKS_MAX_AGE_SEC = 300

export function jwksRoutes (reissuer: Reissuer, options: JwksRoutesOptions = {}): (app: FastifyInstance) => void {
  const cacheControl = `public, max-age=${options.maxAgeSec ?? JWKS_MAX_AGE_SEC}`
  return (app) => {
    app.get(JWKS_PATH, async (_request, reply) => reply
      .header('cache-control', cacheControl)
      .type('application/jwk-set+json; charset=utf-8')
      .send(JSON.stringify({ keys: reissuer.publishedKeys() })))

    app.get(DISCOVERY_PATH, async (request, reply) => {
      const issuer = reissuer.issuer()
      if (issuer === null) {
        return reply.code(404).header('cache-control', 'no-store')
          .send({ error: 'not_found', error_description: 'scopegate re-issues no tokens: the config has no reissue section' })
      }
      // The admin listener does not know the address its clients reach it by: the JWKS is named on the
      // host and scheme this document was fetched from.
      return reply.header('cache-control', cacheControl).send({
        issuer,
        jwks_uri: `${request.protocol}://${request.host}${JWKS_PATH}`
      })
    })
  }
}
