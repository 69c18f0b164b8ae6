/**
 * Rate-limit buckets in this process's memory (`store: memory`). Bounded twice: an entry lives no longer
 * than its window (a TAT in the past is an empty bucket, so it is dropped), and the map holds at most
 * `maxEntries`; when full, expired entries are swept, then the least recently used go. Evicting a live
 * bucket only forgets requests already counted: its key starts again with a full bucket.
 */
import { gcra, type LimitResult } from './gcra.js'

export const MEMORY_STORE_DEFAULTS = { maxEntries: 100_000 }

export class MemoryLimitStore {
  private readonly buckets = new Map<string, number>()
  private readonly maxEntries: number

  constructor (options: { maxEntries?: number } = {}) {
    this.maxEntries = options.maxEntries ?? MEMORY_STORE_DEFAULTS.maxEntries
  }

  get size (): number { return this.buckets.size }

  /** One request against the bucket `key`, at `now` (ms since the epoch). */
  take (key: string, now: number, limit: number, windowMs: number): LimitResult {
    const stored = this.buckets.get(key)
    const { result, tat } = gcra(stored ?? null, now, limit, windowMs)
    if (tat !== null) {
      // Deleted and set again: Map order is then least recently used first.
      if (stored !== undefined) this.buckets.delete(key)
      else if (this.buckets.size >= this.maxEntries) this.evict(now)
      this.buckets.set(key, tat)
    }
    return result
  }

  private evict (now: number): void {
    for (const [key, tat] of this.buckets) if (tat <= now) this.buckets.delete(key)
    // Still full: drop the least recently used tenth, so a full map is not swept on every new key.
    let drop = this.buckets.size >= this.maxEntries ? Math.max(1, Math.floor(this.maxEntries / 10)) : 0
    for (const key of this.buckets.keys()) {
      if (drop-- <= 0) break
      this.buckets.delete(key)
    }
  }
}
