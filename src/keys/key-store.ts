/**
 * One issuer's signing keys, built to keep serving through rotation and outages:
 * - keys are fetched at start-up and refreshed in the background once `refreshInterval` has passed and
 *   the issuer is in use (stale-while-revalidate: the request that notices does not wait);
 * - an unknown kid triggers a refetch at most once per `cooldown`, counted from the last *attempt*,
 *   successful or not, so neither a failing issuer nor a random-kid flood is hit more often than that;
 * - every caller shares the one in-flight fetch;
 * - while the issuer fails, the last good keys stay in use for `maxStale`; after that, or when there
 *   never were usable keys, callers get 503 with Retry-After;
 * - nothing is ever fetched because of what a token says: the URL comes from the config (or the
 *   configured issuer's discovery document) only.
 * Time and fetch are injected, so all of this is tested without sleeping.
 */
import { deny } from '../errors.js'
import type { CompiledIssuer } from '../config/types.js'
import { fetchJson, FetchJsonError, type FetchLike } from './fetch-json.js'
import { importJwk, type KeyEntry } from './import-jwk.js'

export type KeyStoreState = 'starting' | 'ready' | 'stale' | 'unavailable'

export interface KeyStoreStatus {
  issuer: string
  state: KeyStoreState
  keys: number
  /** Seconds since the last successful fetch; null before the first. */
  ageSeconds: number | null
  lastError: string | null
}

export interface KeyStoreEvents {
  /** One call per fetch of the JWKS or discovery document. */
  fetched?: (issuerId: string, result: 'ok' | 'error', what: 'jwks' | 'discovery') => void
  warn?: (message: string, fields: Record<string, unknown>) => void
}

export interface KeyStoreOptions {
  fetch?: FetchLike
  /** Milliseconds since the epoch. */
  now?: () => number
  events?: KeyStoreEvents
}

/** How many unknown kids are remembered as misses between two fetches. */
const MAX_MISSES = 10_000

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
  private readonly misses = new Set<string>()
  private jwksUri: string | null
  private discoveredAt = Number.NEGATIVE_INFINITY

  constructor (issuer: CompiledIssuer, options: KeyStoreOptions = {}) {
    this.issuer = issuer
    this.fetchImpl = options.fetch
    this.now = options.now ?? Date.now
    this.events = options.events ?? {}
    this.jwksUri = issuer.keys.kind === 'jwksUri' ? issuer.keys.url : null
  }

  /** True while there are keys no older than `maxStale`. */
  usable (now = this.now()): boolean {
    return this.current.size > 0 && now - this.fetchedAt <= this.issuer.jwks.maxStaleMs
  }

  /** Whether a key handed out earlier is still published; verified tokens signed by a dropped key are not reused. */
  isCurrent (entry: KeyEntry): boolean {
    return this.current.has(entry)
  }

  status (): KeyStoreStatus {
    const now = this.now()
    let state: KeyStoreState
    if (!this.usable(now)) state = this.attemptedAt === Number.NEGATIVE_INFINITY ? 'starting' : 'unavailable'
    else state = this.lastError === null ? 'ready' : 'stale'
    return {
      issuer: this.issuer.id,
      state,
      keys: this.current.size,
      ageSeconds: this.fetchedAt === Number.NEGATIVE_INFINITY ? null : Math.floor((now - this.fetchedAt) / 1000),
      lastError: this.lastError
    }
  }

  /** Fetch now unless a fetch is under way; never throws. The start-up load and reload use it. */
  refresh (): Promise<void> {
    if (this.inFlight !== null) return this.inFlight
    this.attemptedAt = this.now()
    this.inFlight = this.fetchKeys().finally(() => { this.inFlight = null })
    return this.inFlight
  }

  /** Adopt another store's keys (a reload with an unchanged key source), so nothing is refetched. */
  adopt (other: KeyStore): void {
    this.byKid = other.byKid
    this.current = other.current
    this.fetchedAt = other.fetchedAt
    this.attemptedAt = other.attemptedAt
    this.lastError = other.lastError
    this.jwksUri = other.jwksUri
    this.discoveredAt = other.discoveredAt
  }

  private coolingDown (now: number): boolean {
    return now - this.attemptedAt < this.issuer.jwks.cooldownMs
  }

  private retryAfterSeconds (now: number): number {
    return Math.max(1, Math.ceil((this.attemptedAt + this.issuer.jwks.cooldownMs - now) / 1000))
  }

  /** Refetch if allowed by the cooldown; otherwise wait for a fetch already under way, if any. */
  private async refetchIfAllowed (now: number): Promise<void> {
    if (this.inFlight !== null) return this.inFlight
    if (!this.coolingDown(now)) return this.refresh()
  }

  /** The key for a token's kid and alg. Throws 401 invalid_token for an unknown kid, 503 when no keys are usable. */
  async getKey (kid: string, alg: string): Promise<KeyEntry> {
    const now = this.now()
    if (this.current.size > 0 && now - this.fetchedAt >= this.issuer.jwks.refreshIntervalMs && !this.coolingDown(now)) {
      void this.refresh()
    }
    if (!this.usable(now)) {
      await this.refetchIfAllowed(now)
      if (!this.usable()) {
        throw deny.keysUnavailable(this.retryAfterSeconds(this.now()),
          `issuer ${this.issuer.id} has no usable keys: ${this.lastError ?? 'not fetched yet'}`)
      }
    }
    const found = this.find(kid, alg)
    if (found !== null) return found
    // A kid already found missing is refused at once until the cooldown allows another fetch.
    if (!this.misses.has(kid) || !this.coolingDown(now)) {
      await this.refetchIfAllowed(now)
      const again = this.find(kid, alg)
      if (again !== null) return again
      if (this.misses.size >= MAX_MISSES) this.misses.clear()
      this.misses.add(kid)
    }
    throw deny.invalidToken('token_key_unknown', 'the token was signed by an unknown key',
      `issuer ${this.issuer.id}: no usable key with kid "${kid}" for ${alg}`)
  }

  private find (kid: string, alg: string): KeyEntry | null {
    const entries = this.byKid.get(kid)
    if (entries !== undefined) {
      for (const entry of entries) if (entry.algorithms.has(alg)) return entry
      return null
    }
    if (kid !== '') return null
    // A token without kid is accepted only when exactly one key fits its algorithm.
    let only: KeyEntry | null = null
    for (const entry of this.current) {
      if (!entry.algorithms.has(alg)) continue
      if (only !== null) return null
      only = entry
    }
    return only
  }

  private async resolveJwksUri (): Promise<string> {
    const { keys, jwks, issuer } = this.issuer
    if (keys.kind === 'jwksUri') return keys.url
    if (this.jwksUri !== null && this.now() - this.discoveredAt < jwks.refreshIntervalMs) return this.jwksUri
    try {
      const doc = await fetchJson(keys.url, { timeoutMs: jwks.timeoutMs, maxBytes: jwks.maxBytes, fetch: this.fetchImpl })
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
        this.events.warn?.('discovery failed; using the last jwks_uri', { issuer: this.issuer.id, error: (err as Error).message })
        return this.jwksUri
      }
      throw err
    }
  }

  private async fetchKeys (): Promise<void> {
    const { jwks } = this.issuer
    try {
      const uri = await this.resolveJwksUri()
      const doc = await fetchJson(uri, { timeoutMs: jwks.timeoutMs, maxBytes: jwks.maxBytes, fetch: this.fetchImpl })
      const list = (doc as { keys?: unknown }).keys
      if (!Array.isArray(list)) throw new FetchJsonError('not_json', 'JWKS has no "keys" array')
      const byKid = new Map<string, KeyEntry[]>()
      const skipped: string[] = []
      for (const jwk of list) {
        const result = importJwk(jwk)
        if (!result.ok) { skipped.push(result.reason); continue }
        const same = byKid.get(result.entry.kid) ?? []
        same.push(result.entry)
        byKid.set(result.entry.kid, same)
      }
      if (skipped.length > 0) this.events.warn?.('JWKS keys skipped', { issuer: this.issuer.id, skipped })
      // An answer with no usable key is treated as a failure: the last good keys stay in force.
      if (byKid.size === 0) throw new FetchJsonError('not_json', `JWKS has no usable keys (${list.length} listed)`)
      this.byKid = byKid
      this.current = new Set([...byKid.values()].flat())
      this.fetchedAt = this.now()
      this.lastError = null
      this.misses.clear()
      this.events.fetched?.(this.issuer.id, 'ok', 'jwks')
    } catch (err) {
      this.lastError = err instanceof FetchJsonError ? `${err.kind}: ${err.message}` : (err as Error).message
      this.events.fetched?.(this.issuer.id, 'error', 'jwks')
      this.events.warn?.('JWKS fetch failed', { issuer: this.issuer.id, error: this.lastError, usingStaleKeys: this.usable() })
    }
  }
}
