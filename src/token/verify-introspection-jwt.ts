/**
 * RFC 9701 signed introspection answers (`application/token-introspection+jwt`), for issuers with
 * `introspection.jwtResponse: true` (docs/opaque-tokens.md). The answer is a JWS signed with the issuer's
 * own keys (the key store that verifies its access tokens): `typ` must be `token-introspection+jwt`, `alg`
 * one of the issuer's pinned algorithms, `iss` the issuer, `aud` scopegate's client id, and
 * `token_introspection` the RFC 7662 answer, returned as it is for the usual checks.
 *
 * Any failure here is the answer's, not the token's: it throws `FetchJsonError('not_json')`, which the
 * caller turns into a 503, never a 401.
 */
import type { CompiledIssuer } from '../config/types.js'
import { FetchJsonError } from '../keys/fetch-json.js'
import type { KeyStore } from '../keys/key-store.js'
import { parseJwt } from './parse-jwt.js'
import { verifySignature } from './verify-signature.js'

const TYP = new Set(['token-introspection+jwt', 'application/token-introspection+jwt'])

function refused (why: string): FetchJsonError {
  return new FetchJsonError('not_json', `the signed answer is refused: ${why}`)
}

/** The `token_introspection` member of a verified RFC 9701 answer. Throws `FetchJsonError` (`not_json`). */
export async function verifyIntrospectionJwt (jwt: string, issuer: CompiledIssuer, clientId: string, store: KeyStore): Promise<Record<string, unknown>> {
  let parsed
  try {
    parsed = parseJwt(jwt)
  } catch {
    throw refused('not a JWS')
  }
  const { header, payload, signingInput, signature } = parsed
  if (typeof header.typ !== 'string' || !TYP.has(header.typ.toLowerCase())) throw refused(`typ ${JSON.stringify(header.typ)}`)
  const alg = header.alg
  if (typeof alg !== 'string' || !issuer.algorithms.has(alg)) throw refused(`alg ${JSON.stringify(alg)} is not pinned for ${issuer.id}`)
  if (header.crit !== undefined) throw refused('crit header present')
  const kid = typeof header.kid === 'string' ? header.kid : ''
  const candidates = await store.getKeys(kid, alg)
  if (!candidates.some((entry) => verifySignature(alg, entry.key, signingInput, signature))) throw refused('the signature does not verify')
  if (payload.iss !== issuer.issuer) throw refused(`iss ${JSON.stringify(payload.iss)}`)
  const aud = payload.aud
  if (!(aud === clientId || (Array.isArray(aud) && aud.includes(clientId)))) throw refused('aud is not scopegate\'s client id')
  const answer = payload.token_introspection
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) throw refused('no token_introspection object')
  return answer as Record<string, unknown>
}
