/**
 * Plain values for the re-issue unit tests: a compiled config with two reissue routes, and verified
 * tokens built as the verifier would return them (no signature involved).
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto'
import type { CompiledConfig, CompiledRoute } from '../../src/config/types.js'
import { cacheKey, type VerifiedToken } from '../../src/token/verified-token.js'
import { compileTestConfig } from '../helpers/gateway.js'

export const ORIGINAL_ISS = 'https://idp.example.com'

export function reissueConfig (): CompiledConfig {
  return compileTestConfig({
    issuers: [{ id: 'idp', issuer: ORIGINAL_ISS, jwksUri: `${ORIGINAL_ISS}/jwks`, algorithms: ['ES256'], audiences: ['https://todo.api'] }],
    upstreams: { todo: { url: 'http://todo.internal:3000' } },
    reissue: { issuer: 'https://scopegate.test' },
    routes: [
      { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo', forward: { authorization: 'reissue' } },
      { id: 'reports', match: { path: '/reports', prefix: true }, upstream: 'todo', forward: { authorization: 'reissue', audience: 'https://reports.internal' } }
    ]
  })
}

export function routeOf (config: CompiledConfig, id: string): CompiledRoute {
  const route = config.routes.find((r) => r.id === id)
  if (route === undefined) throw new Error(`no route ${id}`)
  return route
}

const verifyKey = createPublicKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)

/**
 * A verified token with these claims; identity read the default way (sub, client_id, scope). `token`
 * stands for the JWT it was verified from (its digest names it); by default, the claims' JSON.
 */
export function verifiedToken (config: CompiledConfig, claims: Record<string, unknown>, token = JSON.stringify(claims)): VerifiedToken {
  const issuer = config.issuersById.get('idp')
  if (issuer === undefined) throw new Error('no issuer')
  const scope = typeof claims.scope === 'string' ? claims.scope.split(' ') : []
  return {
    subject: typeof claims.sub === 'string' ? claims.sub : null,
    clientId: typeof claims.client_id === 'string' ? claims.client_id : null,
    scopes: scope,
    roles: [],
    audiences: ['https://todo.api'],
    issuer,
    claims: { iss: ORIGINAL_ISS, aud: 'https://todo.api', ...claims },
    expiresAt: typeof claims.exp === 'number' ? claims.exp : 0,
    key: { kid: 'k', key: verifyKey, algorithms: new Set(['ES256']) },
    size: 100,
    digest: cacheKey(token),
    jkt: null,
    x5t: null
  }
}
