/**
 * Re-issued tokens, so a client repeating its token on a route costs a lookup, not a signature. One
 * entry per (original token, route, narrowed scopes), bounded by entries and bytes. The original token
 * is identified by its own SHA-256 (`VerifiedToken.digest`, the token cache's key), never by its claims:
 * the verifier keeps the claims only when some route reads them, so two users' tokens may well carry the
 * same (empty) claims object, and must still never share a re-issued token. The cache never holds a
 * client's token itself.
 *
 * An entry is served only while it has a margin of life left (5 s, or half its life if shorter), never at
 * or past its `exp`, and only for the very route object and signing key it was made under, so a reload
 * that changes a route's audience or the signing key can never be answered from the old entry.
 */
import { LRUCache } from 'lru-cache'
import type { CompiledRoute } from '../config/types.js'
import type { VerifiedToken } from '../token/verified-token.js'

export interface ReissueCacheLimits {
  /** Most entries. */
  maxEntries: number
  /** Most bytes, counted as key plus token length. */
  maxBytes: number
}

export interface ReissueCacheOptions extends ReissueCacheLimits {
  /** Milliseconds since the epoch. */
  now: () => number
}

export const REISSUE_CACHE_DEFAULTS: ReissueCacheLimits = { maxEntries: 10_000, maxBytes: 32 * 1024 * 1024 }

/** The longest margin an entry keeps before its exp: after it, a fresh token is signed. */
const MAX_MARGIN_MS = 5_000

interface Entry {
  jwt: string
  /** Milliseconds since the epoch after which the entry is not served. */
  reuseUntil: number
  route: CompiledRoute
  kid: string
}

/** The cache key of (original token, route, narrowed scopes). */
export function reissueCacheKey (token: VerifiedToken, route: CompiledRoute, scopes: readonly string[]): string {
  return `${token.digest}\0${route.id}\0${scopes.join(' ')}`
}

export class ReissueCache {
  private readonly lru: LRUCache<string, Entry>
  private readonly now: () => number
  hits = 0
  misses = 0

  constructor (options: ReissueCacheOptions) {
    this.now = options.now
    this.lru = new LRUCache<string, Entry>({
      max: Math.max(1, options.maxEntries),
      maxSize: Math.max(1, options.maxBytes),
      sizeCalculation: (entry, key) => key.length + entry.jwt.length,
      ttlAutopurge: false,
      perf: { now: () => this.now() }
    })
  }

  get size (): number { return this.lru.size }

  /** The cached token for this key, if it was made for this route object and signing key and has life left. */
  get (key: string, route: CompiledRoute, kid: string): string | undefined {
    const entry = this.lru.get(key)
    if (entry !== undefined && entry.route === route && entry.kid === kid && this.now() < entry.reuseUntil) {
      this.hits++
      return entry.jwt
    }
    if (entry !== undefined) this.lru.delete(key)
    this.misses++
    return undefined
  }

  /** Keeps a token signed at `issuedAt` (ms) that expires at `exp` (s); one too short-lived to reuse is not kept. */
  set (key: string, entry: { jwt: string, route: CompiledRoute, kid: string, issuedAt: number, exp: number }): void {
    const expMs = entry.exp * 1000
    const margin = Math.min(MAX_MARGIN_MS, (expMs - entry.issuedAt) / 2)
    const reuseUntil = expMs - margin
    const ttl = Math.floor(reuseUntil - this.now())
    if (ttl <= 0) return
    this.lru.set(key, { jwt: entry.jwt, route: entry.route, kid: entry.kid, reuseUntil }, { ttl })
  }

  clear (): void { this.lru.clear() }
}
