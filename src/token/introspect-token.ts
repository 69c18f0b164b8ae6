/**
 * Opaque tokens, verified by RFC 7662 introspection at the issuer that issued them (docs/opaque-tokens.md).
 *
 * Which issuer: a token that is not a JWT goes to the one issuer marked `introspection.opaqueTokens`
 * (compile.ts refuses two); a JWT goes to introspection only when its `iss` names an issuer marked
 * `introspection.jwtTokens`. A token is never tried at several issuers: that would hand one IdP's tokens
 * to another. The endpoint comes from the config or discovery, never from the token.
 *
 * What the answer means: `active: false` is 401 `invalid_token` (cached `refusalTtl`); an active answer is
 * type-checked like JWT claims (check-claim-types.ts) and feeds the same identity and policy: `scope`,
 * `client_id`, `sub`, `aud`, `iss`, `exp`, roles from `rolesClaim`. A timeout, a network error, a status
 * other than 200 or an answer that is not a JSON object is 503 `temporarily_unavailable` with
 * `Retry-After`: the endpoint failed, the token may be good, so the client must not be logged out. After a
 * failure the endpoint is asked again at most once per `cooldown` (`introspection-health.ts`); meanwhile
 * tokens not in the cache get the same 503 at once, and cached answers still count.
 *
 * Caching: keyed by the token's digest (`cacheKey`), an active answer lives until the token's `exp` and no
 * longer than `cacheTtl` (the revocation window); concurrent requests with the same new token share one call.
 */
import { confirmation } from './confirmation.js'
import { LRUCache } from 'lru-cache'
import type { CompiledConfig, CompiledIntrospection, CompiledIssuer } from '../config/types.js'
import { FetchJsonError, type FetchLike } from '../keys/fetch-json.js'
import { IntrospectionClient } from '../keys/introspection-client.js'
import type { KeyStore } from '../keys/key-store.js'
import { GatewayError, deny, toGatewayError } from '../shared/errors.js'
import { checkClaimTypes } from './check-claim-types.js'
import { IntrospectionHealth, type IntrospectionStatus } from './introspection-health.js'
import { Interner, identityClaims } from './claims.js'
import type { JwtPayload } from './parse-jwt.js'
import { cacheKey, verifiedToken, type VerifiedToken } from './verified-token.js'
import { verifyIntrospectionJwt } from './verify-introspection-jwt.js'
import { TokenMiss, type TokenLookup, type Verifier } from './verify-token.js'

/** How an introspection ended, as counted in `scopegate_introspections_total{issuer,result}`. */
export type IntrospectionResult = 'active' | 'inactive' | 'invalid' | 'timeout' | 'network' | 'status' | 'redirect' | 'too_large' | 'not_json'

/** Told of every introspection call (metrics, readiness). */
export type IntrospectionListener = (issuer: string, result: IntrospectionResult) => void

/** A token to be introspected at `issuer`: the verifier's miss, with the issuer already chosen. */
export class IntrospectionMiss extends TokenMiss {
  readonly issuer: CompiledIssuer
  constructor (token: string, digest: string, issuer: CompiledIssuer) {
    super(token, digest)
    this.issuer = issuer
  }
}

export interface IntrospectionOptions {
  /** Each issuer's key store, by issuer id: verifies RFC 9701 signed answers (`jwtResponse`). */
  keyStores?: ReadonlyMap<string, KeyStore>
  fetch?: FetchLike
  /** The fetch of one issuer's client, when it differs from `fetch` (tracing wraps it). */
  fetchFor?: (issuer: CompiledIssuer) => FetchLike
  /** Milliseconds since the epoch. */
  now?: () => number
  listener?: IntrospectionListener
  /** Most cached answers, active or refused. */
  maxEntries?: number
  /** The verifier this one replaces (a reload): each issuer's endpoint health is kept while its endpoint and client are unchanged. */
  previous?: IntrospectingVerifier
}

export type { IntrospectionStatus } from './introspection-health.js'

const NO_CLAIMS: JwtPayload = Object.freeze({})

/**
 * What the readiness probe sends to an endpoint that has never answered: no token of any IdP, so RFC 7662
 * §2.2 has the endpoint answer `active: false`, and any answer shows it works. Not a secret.
 */
export const PROBE_TOKEN = 'scopegate-readiness-probe'

/** Token types an access token may be introspected as (RFC 7662 §2.2 `token_type`, when the IdP sends one). */
const ACCESS_TOKEN_TYPES = new Set(['bearer', 'access_token', 'dpop', 'urn:ietf:params:oauth:token-type:access_token'])

/** Three parts separated by dots: what `parse-jwt.ts` would try to read. Two `indexOf`s, no regex, on every token. */
function isJwtShaped (token: string): boolean {
  const first = token.indexOf('.')
  const second = first < 0 ? -1 : token.indexOf('.', first + 1)
  return second > 0 && token.indexOf('.', second + 1) < 0
}

function unavailable (issuer: CompiledIssuer, settings: CompiledIntrospection, detail: string): GatewayError {
  return new GatewayError(503, 'temporarily_unavailable', 'introspection_unavailable', 'the token issuer cannot be asked about this token right now',
    { retryAfter: settings.retryAfterSec, detail: `introspection at ${issuer.id}: ${detail}` })
}

/** What identifies an issuer's endpoint for its health: a reload that changes none of it keeps the health. */
function endpointSource (issuer: CompiledIssuer, settings: CompiledIntrospection): string {
  return JSON.stringify([issuer.issuer, settings.endpoint, settings.clientId, settings.auth.method])
}

/** The `iss` of a JWT-shaped token, read without trusting it (it only picks where the token is sent). */
function peekIssuer (token: string): unknown {
  const first = token.indexOf('.')
  try {
    return (JSON.parse(Buffer.from(token.slice(first + 1, token.indexOf('.', first + 1)), 'base64url').toString('utf8')) as { iss?: unknown }).iss
  } catch {
    return undefined
  }
}

/**
 * The verifier with introspection in front: tokens bound for introspection are answered from its own
 * cache or introspected; every other token goes to the JWT verifier it wraps, unchanged.
 */
export class IntrospectingVerifier implements Verifier {
  private readonly inner: Verifier
  private readonly config: CompiledConfig
  private readonly clients = new Map<string, IntrospectionClient>()
  private readonly cache: LRUCache<string, VerifiedToken | GatewayError>
  private readonly inflight = new Map<string, Promise<VerifiedToken>>()
  private readonly now: () => number
  private readonly listener: IntrospectionListener
  private readonly shared = new Interner()
  /** Issuers whose JWTs are introspected, by `iss`; empty in most configs, so JWTs skip the peek. */
  private readonly jwtIssuers = new Map<string, CompiledIssuer>()
  /** Per issuer id: whether its endpoint answers, and the cooldown after a failure. */
  private readonly health = new Map<string, { source: string, health: IntrospectionHealth }>()

  constructor (inner: Verifier, config: CompiledConfig, options: IntrospectionOptions = {}) {
    this.inner = inner
    this.config = config
    this.now = options.now ?? Date.now
    this.listener = options.listener ?? (() => {})
    for (const issuer of config.issuersById.values()) {
      if (issuer.introspection === undefined) continue
      const store = options.keyStores?.get(issuer.id)
      const clientId = issuer.introspection.clientId
      const openSigned = store === undefined ? undefined : async (jwt: string) => await verifyIntrospectionJwt(jwt, issuer, clientId, store)
      this.clients.set(issuer.id, new IntrospectionClient(issuer, issuer.introspection, { fetch: options.fetchFor?.(issuer) ?? options.fetch, now: this.now, openSigned }))
      const source = endpointSource(issuer, issuer.introspection)
      const kept = options.previous?.health.get(issuer.id)
      this.health.set(issuer.id, { source, health: kept?.source === source ? kept.health : new IntrospectionHealth() })
      if (issuer.introspection.jwtTokens) this.jwtIssuers.set(issuer.issuer, issuer)
    }
    this.cache = new LRUCache({ max: options.maxEntries ?? 10_000, ttlAutopurge: false, ttlResolution: 0, perf: { now: () => this.now() } })
  }

  /** Introspection answers held (active and refused), for the status page. */
  get cacheSize (): number {
    return this.cache.size
  }

  /** Each introspecting issuer's state, for `/readyz`. */
  status (): IntrospectionStatus[] {
    const now = this.now()
    return [...this.health].map(([issuer, { health }]) => health.status(issuer, now))
  }

  /** False while an issuer's endpoint fails and has never answered since start: readiness's introspection check. */
  usable (): boolean {
    for (const { health } of this.health.values()) if (health.state() === 'unavailable') return false
    return true
  }

  /**
   * `status()` for the readiness probe, which asks an `unavailable` endpoint again (with `PROBE_TOKEN`, at
   * most once per cooldown, not waited for): an instance kept out of traffic because it is not ready still
   * recovers when the IdP does, as a key store does (`KeyStore.probe`).
   */
  probe (): IntrospectionStatus[] {
    for (const [id, { health }] of this.health) {
      const issuer = this.config.issuersById.get(id) as CompiledIssuer
      if (health.state() !== 'unavailable' || !health.mayCall(this.now(), (issuer.introspection as CompiledIntrospection).cooldownMs)) continue
      this.ask(issuer, PROBE_TOKEN).then(
        (answer) => { this.listener(id, answer.active === true ? 'active' : 'inactive') },
        () => {})
    }
    return this.status()
  }

  /** The issuer this token is introspected at, or undefined when it goes to the JWT verifier. */
  private introspectionIssuer (token: string): CompiledIssuer | undefined {
    if (!isJwtShaped(token)) return this.config.opaqueIssuer
    if (this.jwtIssuers.size === 0) return undefined
    const iss = peekIssuer(token)
    return typeof iss === 'string' ? this.jwtIssuers.get(iss) : undefined
  }

  lookup (token: string): TokenLookup {
    const issuer = this.introspectionIssuer(token)
    if (issuer === undefined) return this.inner.lookup(token)
    const digest = cacheKey(token)
    const hit = this.cache.get(digest)
    if (hit === undefined) return new IntrospectionMiss(token, digest, issuer)
    // Answers are cached no longer than exp; a clock that moved past it makes the entry a miss.
    if (!(hit instanceof GatewayError) && this.now() / 1000 >= hit.expiresAt) {
      this.cache.delete(digest)
      return new IntrospectionMiss(token, digest, issuer)
    }
    return hit
  }

  async verifyMiss (miss: TokenMiss): Promise<VerifiedToken> {
    if (!(miss instanceof IntrospectionMiss)) return await this.inner.verifyMiss(miss)
    // Single flight: the same new token arriving many times at once costs the IdP one call.
    let running = this.inflight.get(miss.digest)
    if (running === undefined) {
      running = this.introspect(miss).finally(() => this.inflight.delete(miss.digest))
      this.inflight.set(miss.digest, running)
    }
    return await running
  }

  /**
   * One call to the issuer's endpoint, unless its cooldown forbids it: the answer, not yet judged, or the
   * 503 for a failure (counted) or for a call not made (counted in no metric but the decision's own).
   */
  private async ask (issuer: CompiledIssuer, token: string): Promise<Record<string, unknown>> {
    const settings = issuer.introspection as CompiledIntrospection
    const client = this.clients.get(issuer.id) as IntrospectionClient
    const { health } = this.health.get(issuer.id) as { health: IntrospectionHealth }
    if (!health.mayCall(this.now(), settings.cooldownMs)) throw unavailable(issuer, settings, `not asked: the endpoint failed (${health.failure ?? 'unknown'}), retried once per cooldown`)
    const settle = health.attempt(this.now())
    try {
      const answer = await client.introspect(token)
      settle(null, this.now())
      return answer
    } catch (err) {
      const kind = err instanceof FetchJsonError ? err.kind : 'network'
      settle(kind, this.now())
      this.listener(issuer.id, kind)
      throw unavailable(issuer, settings, err instanceof Error ? err.message : String(err))
    }
  }

  private async introspect (miss: IntrospectionMiss): Promise<VerifiedToken> {
    const { issuer } = miss
    const settings = issuer.introspection as CompiledIntrospection
    const answer = await this.ask(issuer, miss.token)
    let verified: VerifiedToken
    try {
      verified = this.judge(answer, issuer, settings, miss.digest)
    } catch (err) {
      const failure = toGatewayError(err)
      this.listener(issuer.id, failure.reason === 'token_inactive' ? 'inactive' : 'invalid')
      if (failure.code === 'invalid_token') this.cache.set(miss.digest, failure, { ttl: settings.refusalTtlMs })
      throw failure
    }
    this.listener(issuer.id, 'active')
    const ttl = Math.min(settings.cacheTtlMs, verified.expiresAt * 1000 - this.now())
    if (ttl > 0) this.cache.set(miss.digest, verified, { ttl })
    return verified
  }

  /** An introspection answer as a verified token, or the 401 it stands for. */
  private judge (answer: Record<string, unknown>, issuer: CompiledIssuer, settings: CompiledIntrospection, digest: string): VerifiedToken {
    // RFC 7662 §2.2: `active` is a boolean, required; anything but `true` is an inactive token.
    if (answer.active !== true) throw deny.invalidToken('token_inactive', 'the token is not active', `introspection at ${issuer.id}: active ${JSON.stringify(answer.active)}`)
    if (answer.iss !== undefined && answer.iss !== issuer.issuer) {
      throw deny.invalidToken('token_issuer_unknown', 'the token issuer is not accepted', `introspection at ${issuer.id} answered iss ${JSON.stringify(answer.iss)}`)
    }
    const type = answer.token_type
    if (type !== undefined && (typeof type !== 'string' || !ACCESS_TOKEN_TYPES.has(type.toLowerCase()))) {
      throw deny.invalidToken('token_type_invalid', 'the token is not an access token', `introspection at ${issuer.id}: token_type ${JSON.stringify(type)}`)
    }
    const nowSec = this.now() / 1000
    // An answer without exp is trusted for cacheTtl at most: the IdP said nothing about the token's life.
    const payload: JwtPayload = answer.exp === undefined ? { ...answer, exp: Math.floor(nowSec + settings.cacheTtlMs / 1000) } : answer
    const { exp } = checkClaimTypes(payload, issuer, this.config)
    if (nowSec >= exp + issuer.clockToleranceSec) throw deny.invalidToken('token_expired', 'the token has expired', `exp ${exp}, now ${Math.floor(nowSec)}`)
    const identity = identityClaims(payload, { ...issuer.claims, roles: settings.roles }, this.shared)
    const audMissing = payload.aud === undefined || (Array.isArray(payload.aud) && payload.aud.length === 0)
    if (!audMissing && (identity.audiences === null || !identity.audiences.some((a) => issuer.audiences.has(a)))) {
      throw deny.invalidToken('token_audience_invalid', 'the token audience is not accepted', `aud ${JSON.stringify(payload.aud)} not among ${issuer.id}'s audiences`)
    }
    const claims = this.config.keepClaims ? payload : NO_CLAIMS
    // RFC 8705 §3.2: an introspection answer says what the token is bound to in `cnf`, as a JWT would.
    const bound = confirmation(payload)
    return verifiedToken(identity, issuer, claims, exp, null, 256, digest, bound.jkt, bound.x5t)
  }
}
