/**
 * Re-issuing as the running gateway does it: the settings and keys of the config in force, the token
 * cache, and their replacement on reload.
 *
 * Keys are read before a config is put in force: on reload, the new config is swapped in only once its
 * key files have been read and checked, so a config naming an unreadable or unfit key is refused like any
 * invalid config and the old one (with its keys) stays. A generated key (no `reissue.keys`) is kept
 * across reloads while the algorithm does not change, so a SIGHUP does not orphan the tokens it signed.
 */
import type { Logger } from 'pino'
import { problemsOf } from '../config/problems.js'
import type { CompiledConfig, CompiledRoute } from '../config/types.js'
import type { Allow } from '../decision/decide.js'
import { parseDuration } from '../shared/duration.js'
import { deny } from '../shared/errors.js'
import { REISSUE_CACHE_DEFAULTS, ReissueCache, reissueCacheKey, type ReissueCacheLimits } from './reissue-cache.js'
import { reissueClaims, signReissuedToken } from './reissue-token.js'
import { generateSigningKeys, keyBaseDir, loadSigningKeys, type PublishedJwk, type ReissueAlgorithm, type SigningKeySet } from './signing-keys.js'

export interface ReissuerOptions {
  logger: Logger
  /** Milliseconds since the epoch; the engine's clock, injected by tests. */
  now?: () => number
  cache?: Partial<ReissueCacheLimits>
}

/** Where the admin listener serves the JWKS of re-issued tokens. */
export const JWKS_PATH = '/.well-known/jwks.json'

/**
 * The JWKS address published in discovery: `reissue.jwksUri`, else the issuer's well-known path. Taken
 * from config, never from a request, so a cached discovery document is the same for every client.
 */
export function publishedJwksUri (reissue: { issuer: string, jwksUri?: string }): string {
  return reissue.jwksUri ?? reissue.issuer.replace(/\/+$/, '') + JWKS_PATH
}

interface ReissueState {
  issuer: string
  jwksUri: string
  ttlMs: number
  algorithm: ReissueAlgorithm
  keys: SigningKeySet
  cache: ReissueCache
  /** Signatures under way, shared by concurrent requests for the same cache key. */
  signing: Map<string, { route: CompiledRoute, jwt: Promise<string> }>
}

export class Reissuer {
  private readonly logger: Logger
  private readonly now: () => number
  private readonly cacheLimits: ReissueCacheLimits
  private state: ReissueState | null = null
  /** The last reload still reading keys; requests wait for it, so none signs under a stale config. */
  private loading: Promise<boolean> | null = null

  constructor (options: ReissuerOptions) {
    this.logger = options.logger
    this.now = options.now ?? Date.now
    this.cacheLimits = { ...REISSUE_CACHE_DEFAULTS, ...options.cache }
  }

  /** Loads the keys of the config the gateway starts with. Throws `ConfigError` for an unusable key file. */
  async start (config: CompiledConfig): Promise<void> {
    this.install(await this.prepare(config))
  }

  /**
   * Reads the new config's keys, then calls `swap` (which puts the config in force) and installs them
   * together. If a key cannot be used, logs the problems and neither swaps nor installs. Reloads apply in
   * the order they were asked for. Without a reissue section, and nothing pending, the swap is synchronous.
   * Resolves true once swapped in, false if refused.
   */
  reload (config: CompiledConfig, swap: () => void): Promise<boolean> {
    if (config.reissue === null && this.loading === null) {
      swap()
      this.install(null)
      return Promise.resolve(true)
    }
    const previous: Promise<unknown> = this.loading ?? Promise.resolve()
    const loading: Promise<boolean> = previous.then(async () => {
      let state: ReissueState | null
      try {
        state = await this.prepare(config)
      } catch (err) {
        this.logger.error({ config: config.source, problems: problemsOf(err, 'reissue') }, 'config reload failed: the re-issue keys cannot be used; the previous config stays in force')
        return false
      }
      swap()
      this.install(state)
      return true
    }).catch((err: unknown) => {
      // swap() failed: nothing was installed, and a reload must never become an unhandled rejection.
      this.logger.error({ config: config.source, err: { message: (err as Error).message } }, 'config reload failed; the previous config stays in force')
      return false
    }).finally(() => {
      if (this.loading === loading) this.loading = null
    })
    this.loading = loading
    return loading
  }

  /** Resolves once every reload asked for so far has applied (or failed). */
  async settled (): Promise<void> {
    while (this.loading !== null) await this.loading
  }

  /**
   * The re-issued token for an allowed request, if it gets one: its route re-issues
   * (`forward.authorization: reissue`) and it presented a token. Otherwise undefined, with nothing to await.
   */
  forDecision (decision: Allow): Promise<string> | undefined {
    return decision.route.forward.authorization === 'reissue' && decision.token !== null ? this.reissue(decision) : undefined
  }

  /**
   * The bearer token to send upstream for an allowed request: from the cache, or freshly signed. Only
   * called for a request that presented a verified token.
   */
  async reissue (decision: Allow): Promise<string> {
    if (this.loading !== null) await this.settled()
    const state = this.state
    const { token, route, scopes } = decision
    if (state === null || token === null) throw deny.internal(`cannot reissue on route ${route.id}: ${state === null ? 'no reissue keys loaded' : 'no token'}`)

    const key = reissueCacheKey(token, route, scopes)
    const kid = state.keys.signer.kid
    const cached = state.cache.get(key, route, kid)
    if (cached !== undefined) return cached

    const pending = state.signing.get(key)
    if (pending !== undefined && pending.route === route) return pending.jwt
    const now = this.now()
    const claims = reissueClaims({ issuer: state.issuer, audience: route.forward.audience, token, scopes, now, ttlMs: state.ttlMs })
    const jwt = signReissuedToken(claims, state.keys.signer)
    state.signing.set(key, { route, jwt })
    try {
      const signed = await jwt
      state.cache.set(key, { jwt: signed, route, kid, issuedAt: now, exp: claims.exp })
      return signed
    } finally {
      if (state.signing.get(key)?.jwt === jwt) state.signing.delete(key)
    }
  }

  /** The public keys to publish: every configured key (the signer first), or none without a reissue section. */
  publishedKeys (): readonly PublishedJwk[] {
    return this.state?.keys.published ?? []
  }

  /** `reissue.issuer` of the config in force, or null without a reissue section. */
  issuer (): string | null {
    return this.state?.issuer ?? null
  }

  /** The JWKS address the discovery document publishes, or null without a reissue section. */
  jwksUri (): string | null {
    return this.state?.jwksUri ?? null
  }

  /** The cache in force, for metrics and tests. */
  cache (): ReissueCache | null {
    return this.state?.cache ?? null
  }

  private async prepare (config: CompiledConfig): Promise<ReissueState | null> {
    const raw = config.reissue
    if (raw === null) return null
    let keys = await loadSigningKeys(raw, { baseDir: keyBaseDir(config.source), source: config.source })
    if (keys === null) {
      const previous = this.state?.keys
      keys = previous?.generated === true && previous.signer.alg === raw.algorithm ? previous : await generateSigningKeys(raw.algorithm)
      if (keys !== previous) {
        this.logger.warn({ kid: keys.signer.kid, alg: keys.signer.alg },
          'reissue.keys is not set: generated a signing key for re-issued tokens. It lives in this process only: ' +
          'tokens it signed stop verifying when scopegate restarts, and each replica publishes a different key. ' +
          'Configure reissue.keys for production')
      }
    }
    return {
      issuer: raw.issuer,
      jwksUri: publishedJwksUri(raw),
      ttlMs: parseDuration(raw.ttl),
      algorithm: raw.algorithm,
      keys,
      cache: new ReissueCache({ ...this.cacheLimits, now: this.now }),
      signing: new Map()
    }
  }

  private install (state: ReissueState | null): void {
    const before = this.state
    this.state = state
    if (state !== null && state.keys !== before?.keys && !state.keys.generated) {
      this.logger.info({ signer: state.keys.signer.kid, published: state.keys.published.map((k) => k.kid) }, 're-issue keys loaded')
    }
  }
}
