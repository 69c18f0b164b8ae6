/**
 * One issuer's signing keys, built to keep serving through rotation and outages:
 * - keys are fetched at start-up; while the issuer is in use they are refreshed in the background once
 *   nine tenths of `refreshInterval` have passed (refresh-ahead, driven by use: no timers), so under
 *   traffic no request waits for a fetch;
 * - while the issuer is healthy, keys older than `refreshInterval` are never used without asking the
 *   issuer first (the request waits for the shared fetch), so a removed kid stops passing within
 *   `refreshInterval`, even after an idle spell and even for cached tokens;
 * - an unknown kid triggers a refetch at most once per `cooldown`, counted from the last *attempt*,
 *   successful or not, so neither a failing issuer nor a random-kid flood is hit more often than that;
 * - every caller shares the one in-flight fetch;
 * - while the issuer fails, the last good keys stay in use for `maxStale`, counted from the first failed
 *   attempt; after that, or when there never were usable keys, callers get 503 with Retry-After;
 * - nothing is ever fetched because of what a token says: the URL comes from the config (or the
 *   configured issuer's discovery document) only.
 * Time and fetch are injected, so all of this is tested without sleeping.
 */
import { deny } from '../shared/errors.js'
import type { CompiledIssuer } from '../config/types.js'
import { fetchJson, FetchJsonError, type FetchLike } from './fetch-json.js'
import { importJwk, type KeyEntry } from './import-jwk.js'

export type KeyStoreState = 'starting' | 'ready' | 'stale' | 'unavailable'

/**
 * `starting`: no fetch has finished yet. `ready`: keys in hand and the last fetch succeeded.
 * `stale`: the issuer is failing and the last good keys are in use (for `maxStale`).
 * `unavailable`: no usable keys: none were ever fetched, or the issuer has failed for longer than `maxStale`.
 */
export interface KeyStoreStatus {
  issuer: string
  state: KeyStoreState
  keys: number
  /** Seconds since the last successful fetch; null before the first. */
  ageSeconds: number | null
  /** Seconds since the first failed attempt after the last success; null while healthy. */
  failingForSeconds: number | null
  lastError: string | null
}

export interface KeyStoreEvents {
  /**
   * One `discovery` call per fetch of the discovery document, and one `jwks` call per attempt to get keys
   * (a failed discovery is also a failed `jwks` attempt: no keys came of it).
   */
  fetched?: (issuerId: string, result: 'ok' | 'error', what: 'jwks' | 'discovery') => void
  /** A fetch failed, or the issuer's state changed for the worse. */
  warn?: (message: string, fields: Record<string, unknown>) => void
  /** The issuer's state changed for the better (e.g. back to `ready`). */
  info?: (message: string, fields: Record<string, unknown>) => void
}

export interface KeyStoreOptions {
  fetch?: FetchLike
  /** Milliseconds since the epoch. */
  now?: () => number
  events?: KeyStoreEvents
}

/** How many unknown kids are remembered as misses between two fetches. */
const MAX_MISSES = 10_000
/** Use after this fraction of `refreshInterval` starts a background refresh. */
const REFRESH_AHEAD = 0.9
/** Skipped keys named one by one in the log line; the rest are only counted. */
const MAX_SKIPPED_LOGGED = 10

export class KeyStore {
  readonly issuer: CompiledIssuer
  private readonly fetchImpl: FetchLike | undefined
  private readonly now: () => number
  private readonly events: KeyStoreEvents

  private byKid = new Map<string, KeyEntry[]>()
  private current = new Set<KeyEntry>()
  private fetchedAt = Number.NEGATIVE_INFINITY
  private attemptedAt = Number.NEGATIVE_INFINITY
  private inFlight: Promise<void> | null = null
  private lastError: string | null = null
  /** The first failed attempt since the last success; null while healthy. The `maxStale` clock. */
  private failingSince: number | null = null
  private misses = new Set<string>()
  private jwksUri: string | null
  private discoveredAt = Number.NEGATIVE_INFINITY
  private reportedState: KeyStoreState = 'starting'

  constructor (issuer: CompiledIssuer, options: KeyStoreOptions = {}) {
    this.issuer = issuer
    this.fetchImpl = options.fetch
    this.now = options.now ?? Date.now
    this.events = options.events ?? {}
    this.jwksUri = issuer.keys.kind === 'jwksUri' ? issuer.keys.url : null
  }

  /** True while there are keys and the issuer has not been failing for longer than `maxStale`. */
  usable (now = this.now()): boolean {
    return this.current.size > 0 && (this.failingSince === null || now - this.failingSince <= this.issuer.jwks.maxStaleMs)
  }

  /**
   * Whether a verification made earlier with this key may be reused: the key is still published, the
   * keys are usable, and they need no revalidation first. Counts as use of the issuer: it may start a
   * background refresh, so traffic served from the token cache keeps the keys fresh too.
   */
  isCurrent (entry: KeyEntry): boolean {
    const now = this.now()
    this.refreshIfDue(now)
    return this.current.has(entry) && this.usable(now) && !this.mustRevalidate(now)
  }

  status (): KeyStoreStatus {
    const now = this.now()
    return {
      issuer: this.issuer.id,
      state: this.state(now),
      keys: this.current.size,
      ageSeconds: this.fetchedAt === Number.NEGATIVE_INFINITY ? null : Math.floor((now - this.fetchedAt) / 1000),
      failingForSeconds: this.failingSince === null ? null : Math.floor((now - this.failingSince) / 1000),
      lastError: this.lastError
    }
  }

  /** The kids of the keys in use ('' for a key without one), and the JWKS address they were fetched from (for the status page). */
  keySummary (): { kids: string[], jwksUri: string | null } {
    return { kids: [...this.byKid.keys()], jwksUri: this.jwksUri }
  }

  /**
   * `status()` for the readiness probe, which counts as use while the issuer has no usable keys: it
   * starts a retry (at most once per cooldown, not waited for), so an instance that load balancers keep
   * out of traffic because it is not ready still recovers when the issuer does.
   */
  probe (): KeyStoreStatus {
    const now = this.now()
    if (!this.usable(now) && this.inFlight === null && !this.coolingDown(now)) void this.refresh()
    return this.status()
  }

  private state (now: number): KeyStoreState {
    if (!this.usable(now)) return this.current.size === 0 && this.lastError === null ? 'starting' : 'unavailable'
    return this.failingSince === null ? 'ready' : 'stale'
  }

  /** Logs a change of state once: `/readyz` shows the state, the log shows when it changed and why. */
  private report (now = this.now()): void {
    const state = this.state(now)
    if (state === this.reportedState) return
    const previous = this.reportedState
    this.reportedState = state
    const fields = { ...this.status(), previous }
    if (state === 'ready') this.events.info?.('issuer keys ready', fields)
    else if (state === 'stale') this.events.warn?.('issuer keys stale: the issuer is failing, the last good keys stay in use', fields)
    else if (state === 'unavailable') this.events.warn?.('issuer keys unavailable: tokens of this issuer get 503', fields)
  }

  /** Fetch now unless a fetch is under way; never throws. The start-up load and reload use it. */
  refresh (): Promise<void> {
    if (this.inFlight !== null) return this.inFlight
    this.attemptedAt = this.now()
    this.inFlight = this.fetchKeys().finally(() => { this.inFlight = null })
    return this.inFlight
  }

  /**
   * Adopt another store's keys and history (a reload that changed only `jwks` options), so nothing is
   * refetched; a fetch the other store has under way is shared and its result adopted too.
   */
  adopt (other: KeyStore): this {
    const copy = (): void => {
      this.byKid = other.byKid
      this.current = other.current
      this.fetchedAt = other.fetchedAt
      this.attemptedAt = other.attemptedAt
      this.lastError = other.lastError
      this.failingSince = other.failingSince
      this.misses = new Set(other.misses)
      this.jwksUri = other.jwksUri
      this.discoveredAt = other.discoveredAt
      this.reportedState = other.reportedState
    }
    copy()
    if (other.inFlight !== null) {
      const shared: Promise<void> = other.inFlight.then(copy).finally(() => { if (this.inFlight === shared) this.inFlight = null })
      this.inFlight = shared
    }
    return this
  }

  private coolingDown (now: number): boolean {
    return now - this.attemptedAt < this.issuer.jwks.cooldownMs
  }

  /** Healthy keys older than `refreshInterval` are revalidated before use (unless the cooldown forbids a fetch). */
  private mustRevalidate (now: number): boolean {
    return this.failingSince === null && this.current.size > 0 &&
      now - this.fetchedAt >= this.issuer.jwks.refreshIntervalMs && (this.inFlight !== null || !this.coolingDown(now))
  }

  /** Start a background refresh once `REFRESH_AHEAD` of the interval has passed; a failing issuer is retried once per cooldown. */
  private refreshIfDue (now: number): void {
    if (this.current.size > 0 && this.inFlight === null && !this.coolingDown(now) &&
      now - this.fetchedAt >= this.issuer.jwks.refreshIntervalMs * REFRESH_AHEAD) {
      void this.refresh()
    }
  }

  private retryAfterSeconds (now: number): number {
    return Math.max(1, Math.ceil((this.attemptedAt + this.issuer.jwks.cooldownMs - now) / 1000))
  }

  /** Refetch if allowed by the cooldown; otherwise wait for a fetch already under way, if any. */
  private async refetchIfAllowed (now: number): Promise<void> {
    if (this.inFlight !== null) return this.inFlight
    if (!this.coolingDown(now)) return this.refresh()
  }

  /**
   * The keys that may have signed a token with this kid and alg: usually one; more when the JWKS lists
   * the same kid twice (the verifier tries each, so a duplicate kid is never an error of its own).
   * Throws 401 invalid_token for an unknown kid, 503 (with Retry-After) when no keys are usable.
   */
  async getKeys (kid: string, alg: string): Promise<readonly KeyEntry[]> {
    const now = this.now()
    if (this.mustRevalidate(now)) await this.refetchIfAllowed(now)
    else this.refreshIfDue(now)
    if (!this.usable()) {
      await this.refetchIfAllowed(this.now())
      if (!this.usable()) {
        this.report()
        throw deny.keysUnavailable(this.retryAfterSeconds(this.now()),
          `issuer ${this.issuer.id} has no usable keys: ${this.lastError ?? 'not fetched yet'}`)
      }
    }
    const found = this.find(kid, alg)
    if (found.length > 0) return found
    // A kid already found missing is refused at once until the cooldown allows another fetch.
    if (!this.misses.has(kid) || !this.coolingDown(this.now())) {
      await this.refetchIfAllowed(this.now())
      const again = this.find(kid, alg)
      if (again.length > 0) return again
      if (this.misses.size >= MAX_MISSES) this.misses.clear()
      this.misses.add(kid)
    }
    throw deny.invalidToken('token_key_unknown', 'the token was signed by an unknown key',
      `issuer ${this.issuer.id}: no usable key with kid ${JSON.stringify(kid)} for ${alg}`)
  }

  private find (kid: string, alg: string): KeyEntry[] {
    const entries = this.byKid.get(kid)
    if (entries !== undefined) return entries.filter((entry) => entry.algorithms.has(alg))
    if (kid !== '') return []
    // A token without kid is accepted only when exactly one key fits its algorithm.
    const fitting = [...this.current].filter((entry) => entry.algorithms.has(alg))
    return fitting.length === 1 ? fitting : []
  }

  /**
   * The JWKS URL when it is known without a fetch: configured, or discovered and still fresh (the
   * discovery document is cached like the keys, and refetched with them once it is as old as they are due).
   */
  private knownJwksUri (): string | null {
    const { keys, jwks } = this.issuer
    if (keys.kind === 'jwksUri') return keys.url
    return this.jwksUri !== null && this.now() - this.discoveredAt < jwks.refreshIntervalMs * REFRESH_AHEAD ? this.jwksUri : null
  }

  private async resolveJwksUri (): Promise<string> {
    const { keys, jwks, issuer } = this.issuer
    try {
      const doc = await fetchJson(keys.url, { timeoutMs: jwks.timeoutMs, maxBytes: jwks.maxBytes, fetch: this.fetchImpl })
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new FetchJsonError('not_json', 'discovery document is not a JSON object')
      const meta = doc as { issuer?: unknown, jwks_uri?: unknown }
      if (meta.issuer !== issuer) throw new FetchJsonError('status', `discovery names issuer ${JSON.stringify(meta.issuer)}, not ${issuer}`)
      if (typeof meta.jwks_uri !== 'string' || !/^https?:\/\//.test(meta.jwks_uri)) throw new FetchJsonError('status', 'discovery has no http(s) jwks_uri')
      this.events.fetched?.(this.issuer.id, 'ok', 'discovery')
      this.jwksUri = meta.jwks_uri
      this.discoveredAt = this.now()
      return meta.jwks_uri
    } catch (err) {
      this.events.fetched?.(this.issuer.id, 'error', 'discovery')
      // A previously discovered jwks_uri stays good while the discovery document cannot be read.
      if (this.jwksUri !== null) {
        this.events.warn?.('discovery failed; using the last jwks_uri', { issuer: this.issuer.id, url: keys.url, error: describe(err), jwksUri: this.jwksUri })
        return this.jwksUri
      }
      throw new FetchJsonError(err instanceof FetchJsonError ? err.kind : 'network', `discovery ${keys.url}: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  private async fetchKeys (): Promise<void> {
    const { jwks } = this.issuer
    let uri: string | null = null
    try {
      // A known URL is used at once, so the fetch starts in the caller's turn: a tracer then sees which
      // verification asked for it (docs/observability.md#spans).
      uri = this.knownJwksUri() ?? await this.resolveJwksUri()
      const doc = await fetchJson(uri, { timeoutMs: jwks.timeoutMs, maxBytes: jwks.maxBytes, fetch: this.fetchImpl })
      const list = typeof doc === 'object' && doc !== null ? (doc as { keys?: unknown }).keys : undefined
      if (!Array.isArray(list)) throw new FetchJsonError('not_json', 'JWKS is not an object with a "keys" array')
      const byKid = new Map<string, KeyEntry[]>()
      const skipped: string[] = []
      let skippedCount = 0
      for (const jwk of list) {
        const result = importJwk(jwk)
        if (!result.ok) {
          skippedCount++
          if (skipped.length < MAX_SKIPPED_LOGGED) skipped.push(`${kidOf(jwk)}: ${result.reason}`)
          continue
        }
        const entry = this.unchanged(result.entry) ?? result.entry
        const same = byKid.get(entry.kid) ?? []
        same.push(entry)
        byKid.set(entry.kid, same)
      }
      if (skippedCount > 0) this.events.warn?.('JWKS keys skipped', { issuer: this.issuer.id, url: uri, skippedCount, skipped })
      // An answer with no usable key is treated as a failure: the last good keys stay in force.
      if (byKid.size === 0) throw new FetchJsonError('not_json', `JWKS has no usable keys (${list.length} listed)`)
      this.byKid = byKid
      this.current = new Set([...byKid.values()].flat())
      this.fetchedAt = this.now()
      this.lastError = null
      this.failingSince = null
      this.misses.clear()
      this.events.fetched?.(this.issuer.id, 'ok', 'jwks')
    } catch (err) {
      this.lastError = describe(err)
      this.failingSince ??= this.now()
      // Counted even when discovery failed first: `jwks` results count attempts to get keys, so an alert on
      // failed JWKS fetches also fires when it is the discovery document that cannot be read.
      this.events.fetched?.(this.issuer.id, 'error', 'jwks')
      this.events.warn?.('JWKS fetch failed', {
        issuer: this.issuer.id,
        url: uri ?? this.issuer.keys.url,
        error: this.lastError,
        usingStaleKeys: this.usable(),
        keys: this.current.size
      })
    }
    this.report()
  }

  /**
   * The entry already held for this key, when the refetched JWKS still lists it unchanged: keeping the
   * same object keeps the verified-token cache entries that point at it (see `isCurrent`).
   */
  private unchanged (fresh: KeyEntry): KeyEntry | null {
    for (const held of this.byKid.get(fresh.kid) ?? []) {
      if (held.key.equals(fresh.key) && held.algorithms.size === fresh.algorithms.size &&
        [...fresh.algorithms].every((alg) => held.algorithms.has(alg))) return held
    }
    return null
  }
}

function describe (err: unknown): string {
  if (err instanceof FetchJsonError) return `${err.kind}: ${err.message}`
  return err instanceof Error ? err.message : String(err)
}

/** A JWK's kid for a log line, shortened: the JWKS is the issuer's, but it is not trusted to be tidy. */
function kidOf (jwk: unknown): string {
  const kid = typeof jwk === 'object' && jwk !== null ? (jwk as { kid?: unknown }).kid : undefined
  return typeof kid === 'string' ? JSON.stringify(kid.slice(0, 64)) : '(no kid)'
}
