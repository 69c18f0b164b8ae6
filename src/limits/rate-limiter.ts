/**
 * A route's rate limit, applied to a request the engine has allowed (docs/rate-limits.md). It runs after
 * authentication: the bucket is named from the verified token, so a forged token is refused before it can
 * spend anyone's bucket, and a refused request costs no upstream traffic. `store: memory` answers at
 * once; `store: redis` waits on Redis at most its `timeout`, and when Redis fails the route's
 * `onStoreError` lets the request through (`open`) or answers 503 (`closed`).
 */
import type { CompiledRateLimit, CompiledRoute } from '../config/types.js'
import { deny, type GatewayError } from '../shared/errors.js'
import type { VerifiedToken } from '../token/verified-token.js'
import type { LimitResult } from './gcra.js'
import { MemoryLimitStore } from './memory-store.js'
import type { RedisLimitStore } from './redis-store.js'

/** What the limiter reports, for metrics and logs. */
export interface RateLimitEvents {
  /** The shared store failed; `open` says whether the request went through. */
  storeError?: (route: string, open: boolean, err: unknown) => void
}

/** Used where a part of the key has no value: an anonymous request has no client or subject. */
const NONE = '-'

/**
 * The bucket a request spends: the configured parts, in order, each length-prefixed so that no two
 * different combinations can spell the same key. The subject is named with its issuer: two issuers may
 * hand out the same `sub`.
 */
export function rateLimitKey (limit: CompiledRateLimit, route: CompiledRoute, token: VerifiedToken | null, clientIp: string): string {
  let key = ''
  for (const part of limit.key) {
    const value = keyPart(part, route, token, clientIp)
    key += `${value.length}:${value};`
  }
  return key
}

function keyPart (part: CompiledRateLimit['key'][number], route: CompiledRoute, token: VerifiedToken | null, clientIp: string): string {
  if (part === 'route') return route.id
  if (part === 'address') return clientIp
  if (token === null) return NONE
  if (part === 'client') return token.clientId ?? NONE
  return token.subject === null ? NONE : `${token.issuer.id}/${token.subject}`
}

/** The bucket a request would spend, for `scopegate explain`: `route=todos subject=main/alice`. */
export function describeRateLimitKey (limit: CompiledRateLimit, route: CompiledRoute, token: VerifiedToken | null, clientIp: string): string {
  return limit.key.map((part) => `${part}=${keyPart(part, route, token, clientIp)}`).join(' ')
}

/** The 429 for a refused request: `Retry-After` and the RateLimit fields of draft-ietf-httpapi-ratelimit-headers. */
export function rateLimited (limit: CompiledRateLimit, route: CompiledRoute, result: LimitResult): GatewayError {
  const retryAfter = Math.max(1, Math.ceil(result.retryAfterMs / 1000))
  return deny.rateLimited(retryAfter, rateLimitFields(limit, route, result), `route ${route.id}`)
}

/** `RateLimit` (this bucket now) and `RateLimit-Policy` (the route's quota), lower-case names. */
export function rateLimitFields (limit: CompiledRateLimit, route: CompiledRoute, result: LimitResult): Record<string, string> {
  return {
    ratelimit: `"${route.id}";r=${result.remaining};t=${Math.ceil(result.resetMs / 1000)}`,
    'ratelimit-policy': limit.policyField
  }
}

export class RateLimiter {
  readonly memory: MemoryLimitStore
  /** The Redis store of the config in force (its client is the process's, see `redis-clients.ts`); null without one. */
  private readonly redis: () => RedisLimitStore | null
  private readonly now: () => number
  private readonly events: RateLimitEvents

  constructor (options: { redis?: () => RedisLimitStore | null, now?: () => number, maxEntries?: number, events?: RateLimitEvents } = {}) {
    this.memory = new MemoryLimitStore({ maxEntries: options.maxEntries })
    this.redis = options.redis ?? (() => null)
    this.now = options.now ?? Date.now
    this.events = options.events ?? {}
  }

  /**
   * Spend one request of the route's limit: null when it may go on (or the route has no limit), the
   * denial otherwise. A promise only for `store: redis`; it never rejects.
   */
  check (route: CompiledRoute, token: VerifiedToken | null, clientIp: string): GatewayError | null | Promise<GatewayError | null> {
    const limit = route.rateLimit
    if (limit === null) return null
    const key = rateLimitKey(limit, route, token, clientIp)
    if (limit.store === 'memory') {
      const result = this.memory.take(key, this.now(), limit.limit, limit.windowMs)
      return result.allowed ? null : rateLimited(limit, route, result)
    }
    // compile.ts refuses `store: redis` without a redis section: there is always a store here.
    const store = this.redis()
    const taken = store === null
      ? Promise.reject(new Error('no redis section'))
      : store.take(key, limit.limit, limit.windowMs)
    return taken.then(
      (result) => result.allowed ? null : rateLimited(limit, route, result),
      (err: unknown) => {
        const open = limit.onStoreError === 'open'
        this.events.storeError?.(route.id, open, err)
        return open ? null : deny.rateLimitUnavailable(err instanceof Error ? err.message : String(err))
      })
  }
}
