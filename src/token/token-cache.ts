/**
 * Verified tokens, so a token seen again costs a hash lookup instead of a signature check. Keyed by the
 * token's digest (`cacheKey` in verified-token.ts), so an entry never holds the token itself. Bounded by
 * entries and by bytes; an entry lives no longer than its token's `exp`, and `exp` is checked again on
 * every read with the verifier's clock. Route policy is not part of the verification: the decision engine
 * remembers what a route's policy made of a cached token on its own side (see
 * `decision/policy-outcome.ts`). An entry whose signing key has left the JWKS is dropped by the verifier.
 */
import { LRUCache } from 'lru-cache'
import type { GatewayError, Reason } from '../shared/errors.js'
import type { VerifiedToken } from './verified-token.js'

export interface TokenCacheOptions {
  /** Most entries. */
  maxEntries: number
  /** Most bytes, counted as key length plus the size the verifier reports for the entry. */
  maxBytes: number
  /** Longest life of an entry, milliseconds, whatever the token's exp. */
  maxTtlMs: number
  /** Milliseconds since the epoch. */
  now: () => number
}

export const TOKEN_CACHE_DEFAULTS = { maxEntries: 10_000, maxBytes: 64 * 1024 * 1024, maxTtlMs: 10 * 60_000 } as const

export class TokenCache {
  private readonly lru: LRUCache<string, VerifiedToken>
  private readonly now: () => number
  private readonly maxTtlMs: number
  hits = 0
  misses = 0

  constructor (options: TokenCacheOptions) {
    this.now = options.now
    this.maxTtlMs = options.maxTtlMs
    this.lru = new LRUCache<string, VerifiedToken>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      // Entries too large to be worth keeping (over 1/16 of the budget) are simply not stored.
      maxEntrySize: Math.max(1, Math.floor(options.maxBytes / 16)),
      sizeCalculation: (value, key) => key.length + value.size,
      ttlAutopurge: false,
      // Read the (injectable) clock on every check: lru-cache otherwise caches it for 1 ms, which lets an
      // entry outlive its ttl right after a test moves the clock.
      ttlResolution: 0,
      perf: { now: () => this.now() }
    })
  }

  get size (): number { return this.lru.size }

  /**
   * The cached verification, if present, its token still within exp (+ clock tolerance), and `valid`
   * (the verifier's check that the signing key is still current) agrees. Anything else is dropped and
   * counted as a miss.
   */
  get (key: string, valid: (hit: VerifiedToken) => boolean = () => true): VerifiedToken | undefined {
    const hit = this.lru.get(key)
    if (hit === undefined) { this.misses++; return undefined }
    if (this.now() / 1000 >= hit.expiresAt + hit.issuer.clockToleranceSec || !valid(hit)) {
      this.lru.delete(key)
      this.misses++
      return undefined
    }
    this.hits++
    return hit
  }

  set (key: string, verified: VerifiedToken): void {
    const ttl = Math.min(this.maxTtlMs, (verified.expiresAt + verified.issuer.clockToleranceSec) * 1000 - this.now())
    if (ttl <= 0) return
    this.lru.set(key, verified, { ttl })
  }

  clear (): void { this.lru.clear() }
}

/**
 * Failures that a second look at the same token cannot change: a bad signature, an expired or
 * malformed token, an algorithm or issuer that is not accepted. Remembering them for a short while
 * makes a flood of bad tokens cost a lookup, not a signature check each. Failures that may change
 * (unknown kid before a refetch, keys unavailable, not yet valid) are never stored. Bounded by entries
 * (each is a 44-byte digest and a shared error, so entries bound the bytes too), and each entry lives
 * `ttlMs` at most; a reload builds a new cache.
 */
const SETTLED_FAILURES: ReadonlySet<Reason> = new Set<Reason>([
  'token_malformed', 'token_signature_invalid', 'token_expired', 'token_algorithm_not_allowed',
  'token_issuer_unknown', 'token_claim_invalid', 'token_type_invalid', 'token_audience_invalid'
])

export const FAILURE_CACHE_DEFAULTS = { maxEntries: 10_000, ttlMs: 60_000 } as const

export class FailureCache {
  private readonly lru: LRUCache<string, GatewayError>

  constructor (options: { maxEntries: number, ttlMs: number, now: () => number }) {
    this.lru = new LRUCache<string, GatewayError>({
      max: options.maxEntries,
      ttl: options.ttlMs,
      ttlResolution: 0,
      perf: { now: () => options.now() }
    })
  }

  get (key: string): GatewayError | undefined { return this.lru.get(key) }

  /** Remember a failure if its verdict is settled; others are ignored. Keyed like the token cache. */
  set (key: string, failure: GatewayError): void {
    if (SETTLED_FAILURES.has(failure.reason)) this.lru.set(key, failure)
  }
}
