/**
 * GCRA (the generic cell rate algorithm), the rule every rate-limit store applies. A bucket is one number,
 * its theoretical arrival time (TAT): the moment the bucket would be empty again at the permitted rate.
 * Each request moves it one emission interval (`window / limit`) later; a request that would move it more
 * than one window past now is refused and changes nothing. That is a token bucket of capacity `limit`
 * refilled at `limit` per `window`, stored as a single number instead of a count and a timestamp: one
 * value to read and write atomically in Redis (see `redis-store.ts`), one Map entry in memory, and the
 * `RateLimit` fields (remaining, seconds to reset) and `Retry-After` follow from it exactly.
 *
 * The same arithmetic is written in Lua in `redis-store.ts`; `test/unit/rate-limit.test.ts` holds both to one table.
 */

/** What one request did to its bucket. Durations in milliseconds. */
export interface LimitResult {
  allowed: boolean
  /** Requests still allowed at once after this one. */
  remaining: number
  /** Until the bucket is full again (every request of the window available). */
  resetMs: number
  /** Until the next request would be allowed; 0 when this one was. */
  retryAfterMs: number
}

/**
 * One request against a bucket whose TAT is `tat` (null: no bucket yet), at `now` (ms since the epoch).
 * Returns the result and the TAT to store (null: refused, leave the bucket as it is).
 */
export function gcra (tat: number | null, now: number, limit: number, windowMs: number): { result: LimitResult, tat: number | null } {
  const interval = windowMs / limit
  const start = tat === null || tat < now ? now : tat
  const next = start + interval
  if (next - now > windowMs) {
    return { result: { allowed: false, remaining: 0, resetMs: start - now, retryAfterMs: next - now - windowMs }, tat: null }
  }
  return { result: { allowed: true, remaining: Math.floor((windowMs - (next - now)) / interval), resetMs: next - now, retryAfterMs: 0 }, tat: next }
}
