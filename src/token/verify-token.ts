/**
 * Verifies a bearer JWT against the configured issuers: the issuer is chosen by exact `iss`, never
 * fetched for an unknown one; the algorithm must be pinned for that issuer; the key comes from that
 * issuer's key store by kid; then signature, `exp`/`nbf` with clock tolerance, `typ`, and `aud` against
 * the issuer's accepted audiences. A token without `aud` passes here and is judged by the route's
 * audience policy, so the seed rule "deny when the audience is missing" answers `end_users_not_allowed`.
 * Route-specific checks (which issuers, which audiences) belong to the policy, not to this cache.
 */
import type { CompiledConfig } from '../config/types.js'
import { GatewayError, deny, toGatewayError } from '../shared/errors.js'
import type { KeyStore } from '../keys/key-store.js'
import { checkClaimTypes } from './check-claim-types.js'
import { confirmation } from './confirmation.js'
import { Interner, identityClaims } from './claims.js'
import { parseJwt, type JwtPayload } from './parse-jwt.js'
import type { FailureCache, TokenCache } from './token-cache.js'
import { cacheKey, verifiedToken, type VerifiedToken } from './verified-token.js'
import { verifySignature } from './verify-signature.js'

// The token type lives in verified-token.ts (so the caches need not import the verifier); re-exported for
// the callers that name it from here.
export { cacheKey, verifiedToken, type VerifiedToken } from './verified-token.js'

const AT_JWT = new Set(['at+jwt', 'application/at+jwt'])

const NO_CLAIMS: JwtPayload = Object.freeze({})

/**
 * A token the caches do not know: it must be verified afresh (`TokenVerifier.verifyMiss`). Carries the
 * digest already computed, so the verification does not hash the token again.
 */
export class TokenMiss {
  readonly token: string
  readonly digest: string

  constructor (token: string, digest: string) {
    this.token = token
    this.digest = digest
  }
}

/**
 * What the caches say about a token, at once: its verification, the settled failure (returned, not
 * thrown), or a `TokenMiss`.
 */
export type TokenLookup = VerifiedToken | GatewayError | TokenMiss

/** The verifier as the decision engine uses it (an interface, so `explain --claims` can stand in for it). */
export interface Verifier {
  lookup: (token: string) => TokenLookup
  verifyMiss: (miss: TokenMiss) => Promise<VerifiedToken>
}

export class TokenVerifier implements Verifier {
  private readonly config: CompiledConfig
  private readonly keyStores: ReadonlyMap<string, KeyStore>
  private readonly cache: TokenCache | null
  private readonly now: () => number

  private readonly failures: FailureCache | null
  /** Client ids and claim lists shared by the cached tokens (see Interner). */
  private readonly shared = new Interner()

  constructor (config: CompiledConfig, keyStores: ReadonlyMap<string, KeyStore>, cache: TokenCache | null, now: () => number = Date.now,
    failures: FailureCache | null = null) {
    this.failures = failures
    this.config = config
    this.keyStores = keyStores
    this.cache = cache
    this.now = now
  }

  /** A cached verification is reused only while its key is still published and fresh (see KeyStore.isCurrent). */
  private readonly keyCurrent = (hit: VerifiedToken): boolean => hit.key !== null && this.keyStores.get(hit.issuer.id)?.isCurrent(hit.key) === true

  /**
   * The caches' answer for a token, synchronously: a verification still good (exp and signing key
   * re-checked), a settled failure, or a miss to pass to `verifyMiss`. Never throws, never allocates a
   * promise: the common cases (a known token, good or bad) cost a hash and a lookup.
   */
  lookup (token: string): TokenLookup {
    const key = cacheKey(token)
    return this.cache?.get(key, this.keyCurrent) ?? this.failures?.get(key) ?? new TokenMiss(token, key)
  }

  /**
   * A fresh verification of a token `lookup` missed; the result is cached either way (a failure only when
   * it is settled). Rejects only with a GatewayError: anything else thrown on the way becomes one.
   */
  async verifyMiss (miss: TokenMiss): Promise<VerifiedToken> {
    let verified: VerifiedToken
    try {
      verified = await this.verifyUncached(miss.token, miss.digest)
    } catch (err) {
      const failure = toGatewayError(err)
      this.failures?.set(miss.digest, failure)
      throw failure
    }
    this.cache?.set(miss.digest, verified)
    return verified
  }

  /** `lookup`, then `verifyMiss` on a miss: the token's verification, or a rejection with a GatewayError. */
  async verify (token: string): Promise<VerifiedToken> {
    const found = this.lookup(token)
    if (found instanceof TokenMiss) return await this.verifyMiss(found)
    if (found instanceof GatewayError) throw found
    return found
  }

  private async verifyUncached (token: string, digest: string): Promise<VerifiedToken> {
    const { header, payload, signingInput, signature } = parseJwt(token)

    if (typeof payload.iss !== 'string') throw deny.invalidToken('token_issuer_unknown', 'the token has no issuer')
    const issuer = this.config.issuersByIss.get(payload.iss)
    const store = issuer === undefined ? undefined : this.keyStores.get(issuer.id)
    if (issuer === undefined || store === undefined) {
      throw deny.invalidToken('token_issuer_unknown', 'the token issuer is not accepted', `iss ${JSON.stringify(payload.iss)} is not configured`)
    }

    const alg = header.alg
    if (typeof alg !== 'string' || !issuer.algorithms.has(alg)) {
      throw deny.invalidToken('token_algorithm_not_allowed', 'the token algorithm is not allowed', `alg ${JSON.stringify(alg)} not pinned for ${issuer.id}`)
    }
    // RFC 7515 §4.1.11: extensions we do not understand must not be ignored. `b64` (RFC 7797) changes what
    // the signature covers, so it is refused even without the `crit` it requires.
    if (header.crit !== undefined) throw deny.invalidToken('token_malformed', 'the token uses unsupported header extensions', 'crit header present')
    if (header.b64 !== undefined) throw deny.invalidToken('token_malformed', 'the token uses unsupported header extensions', 'b64 header present')
    if (header.kid !== undefined && typeof header.kid !== 'string') throw deny.invalidToken('token_malformed', 'the token is not a well-formed JWT', 'kid is not a string')
    if (issuer.requireTyp && !(typeof header.typ === 'string' && AT_JWT.has(header.typ.toLowerCase()))) {
      throw deny.invalidToken('token_type_invalid', 'the token is not an access token (typ at+jwt)', `typ ${JSON.stringify(header.typ)}`)
    }

    // Nothing in the header but kid and alg chooses the key: jku, x5u, jwk and x5c are never looked at,
    // so a token can neither point scopegate at a URL nor bring its own key.
    const kid = header.kid ?? ''
    const candidates = await store.getKeys(kid, alg)
    // Usually one candidate; a JWKS that lists the same kid twice yields both, and the one that verifies wins.
    const key = candidates.find((entry) => verifySignature(alg, entry.key, signingInput, signature))
    if (key === undefined) {
      throw deny.invalidToken('token_signature_invalid', 'the token signature is invalid',
        `issuer ${issuer.id} kid ${JSON.stringify(kid)} (${candidates.length} candidate key${candidates.length === 1 ? '' : 's'})`)
    }

    const { exp, nbf, iat } = checkClaimTypes(payload, issuer, this.config)
    const now = this.now() / 1000
    const tolerance = issuer.clockToleranceSec
    // RFC 7519 §4.1.4: the current time MUST be before exp, so a token is refused at exp + tolerance itself.
    if (now >= exp + tolerance) throw deny.invalidToken('token_expired', 'the token has expired', `exp ${exp}, now ${Math.floor(now)}`)
    if (nbf !== undefined && now + tolerance < nbf) {
      throw deny.invalidToken('token_not_yet_valid', 'the token is not valid yet', `nbf ${nbf}, now ${Math.floor(now)}`)
    }
    // RFC 7519 §4.1.6 leaves iat unchecked, but a token issued in the future is a broken or forged clock.
    if (iat !== undefined && iat > now + tolerance) {
      throw deny.invalidToken('token_issued_in_future', 'the token was issued in the future', `iat ${iat}, now ${Math.floor(now)}`)
    }

    const identity = identityClaims(payload, issuer.claims, this.shared)
    // An empty `aud` list names no audience: like a missing `aud`, it is left to the route's audience policy.
    const audMissing = payload.aud === undefined || (Array.isArray(payload.aud) && payload.aud.length === 0)
    if (!audMissing && (identity.audiences === null || !identity.audiences.some((a) => issuer.audiences.has(a)))) {
      throw deny.invalidToken('token_audience_invalid', 'the token audience is not accepted', `aud ${JSON.stringify(payload.aud)} not among ${issuer.id}'s audiences`)
    }

    // The payload is kept only where a route reads claims beyond the identity (config.keepClaims).
    const claims = this.config.keepClaims ? payload : NO_CLAIMS
    const bound = confirmation(payload)
    return verifiedToken(identity, issuer, claims, exp, key, signingInput.length * (this.config.keepClaims ? 2 : 1), digest, bound.jkt, bound.x5t)
  }
}
