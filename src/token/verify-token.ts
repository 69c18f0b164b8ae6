/**
 * Verifies a bearer JWT against the configured issuers: the issuer is chosen by exact `iss`, never
 * fetched for an unknown one; the algorithm must be pinned for that issuer; the key comes from that
 * issuer's key store by kid; then signature, `exp`/`nbf` with clock tolerance, `typ`, and `aud` against
 * the issuer's accepted audiences. A token without `aud` passes here and is judged by the route's
 * audience policy, so the seed rule "deny when the audience is missing" answers `end_users_not_allowed`.
 * Route-specific checks (which issuers, which audiences) belong to the policy, not to this cache.
 */
import { hash } from 'node:crypto'
import type { CompiledConfig, CompiledIssuer } from '../config/types.js'
import type { PolicyOutcome } from '../decision/decide.js'
import { GatewayError, deny } from '../shared/errors.js'
import type { KeyEntry } from '../keys/import-jwk.js'
import type { KeyStore } from '../keys/key-store.js'
import { checkClaimTypes } from './check-claim-types.js'
import { Interner, identityClaims, type IdentityClaims } from './claims.js'
import { parseJwt, type JwtPayload } from './parse-jwt.js'
import type { FailureCache, TokenCache } from './token-cache.js'
import { verifySignature } from './verify-signature.js'

export interface VerifiedToken extends IdentityClaims {
  issuer: CompiledIssuer
  /** The whole payload where the config needs it (`CompiledConfig.keepClaims`), otherwise empty. */
  claims: JwtPayload
  /** `exp`, seconds since the epoch. */
  expiresAt: number
  key: KeyEntry
  /** Approximate bytes held, for the cache's byte bound. */
  size: number
  /** The decision engine's note of what the last route's policy made of this token (see decide.ts). */
  outcome: PolicyOutcome | undefined
}

const AT_JWT = new Set(['at+jwt', 'application/at+jwt'])

/**
 * The caches' key for a token: its SHA-256. A cache entry then holds 32 bytes of key instead of the
 * token (typically 700 bytes or more), and collision resistance keeps one token from ever being taken for
 * another. About a microsecond per request.
 */
export function cacheKey (token: string): string {
  return hash('sha256', token, 'base64')
}
const NO_CLAIMS: JwtPayload = Object.freeze({})

/**
 * A VerifiedToken built field by field, never by spreading: every token then shares one hidden class.
 * Built with `{ ...identity, … }`, each cached token carried a hidden class and descriptor array of its
 * own, about 400 bytes per entry (measured in a heap snapshot of a full cache).
 */
export function verifiedToken (identity: IdentityClaims, issuer: CompiledIssuer, claims: JwtPayload, expiresAt: number, key: KeyEntry, size: number): VerifiedToken {
  return {
    subject: identity.subject,
    clientId: identity.clientId,
    scopes: identity.scopes,
    roles: identity.roles,
    audiences: identity.audiences,
    issuer,
    claims,
    expiresAt,
    key,
    size,
    outcome: undefined
  }
}

export class TokenVerifier {
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
  private readonly keyCurrent = (hit: VerifiedToken): boolean => this.keyStores.get(hit.issuer.id)?.isCurrent(hit.key) === true

  /**
   * The token checked: at once from the caches when they know it (its verification, or the settled
   * failure, returned rather than thrown), otherwise a promise of the fresh verification, which rejects
   * with a GatewayError. The common cases cost neither a promise nor a throw.
   */
  check (token: string): VerifiedToken | GatewayError | Promise<VerifiedToken> {
    const key = cacheKey(token)
    return this.cache?.get(key, this.keyCurrent) ?? this.failures?.get(key) ?? this.verifyFresh(token, key)
  }

  async verify (token: string): Promise<VerifiedToken> {
    const checked = this.check(token)
    if (checked instanceof GatewayError) throw checked
    return await checked
  }

  private async verifyFresh (token: string, key: string): Promise<VerifiedToken> {
    let verified: VerifiedToken
    try {
      verified = await this.verifyUncached(token)
    } catch (err) {
      if (err instanceof GatewayError) this.failures?.set(key, err)
      throw err
    }
    this.cache?.set(key, verified)
    return verified
  }

  private async verifyUncached (token: string): Promise<VerifiedToken> {
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
    return verifiedToken(identity, issuer, claims, exp, key, signingInput.length * (this.config.keepClaims ? 2 : 1))
  }
}
