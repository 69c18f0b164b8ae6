/**
 * The admin listener's key publication for re-issued tokens: `GET /.well-known/jwks.json` (public keys
 * only: every configured key, the signer first) and a minimal `GET /.well-known/openid-configuration`
 * naming it, so an upstream can point a standard JWT library at either.
 *
 * The JWKS may be cached (`public, max-age`): keys change only on reload, and a verifier that meets an
 * unknown kid refetches anyway (jose's createRemoteJWKSet does, after its cooldown). Without a reissue
 * section the JWKS is empty and there is no discovery document.
 *
 * Both documents are public and cacheable, so nothing in them comes from the request: the discovery
 * document's `jwks_uri` is `reissue.jwksUri` from config (docs/reissue.md). Built from the Host header, one
 * forged request could have put an attacker's key URL into a shared cache for every verifier behind it.
 */
import type { FastifyInstance } from 'fastify'
import { JWKS_PATH, type Reissuer } from '../reissue/reissuer.js'

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

    app.get(DISCOVERY_PATH, async (_request, reply) => {
      const issuer = reissuer.issuer()
      const jwksUri = reissuer.jwksUri()
      if (issuer === null || jwksUri === null) {
        return reply.code(404).header('cache-control', 'no-store')
          .send({ error: 'not_found', error_description: 'scopegate re-issues no tokens: the config has no reissue section' })
      }
      return reply.header('cache-control', cacheControl).send({ issuer, jwks_uri: jwksUri })
    })
  }
}
