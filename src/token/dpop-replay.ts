/**
 * Where the `jti`s of accepted DPoP proofs are kept, so each proof is accepted once (RFC 9449 §11.1).
 * An entry lives only while its proof's `iat` is inside the window: after that the proof is refused as
 * stale anyway. Entries are keyed by a hash of the proof key's thumbprint and the `jti`: fixed-size, and
 * one client cannot spend another's `jti`.
 *
 * In memory, one process's proofs only: right for a single replica with one worker. With several
 * workers or replicas, a proof replayed to another process would be accepted there, so Redis keeps them
 * for all (`SET … NX PX`: one round trip, atomic). A store that cannot answer says `unavailable`; the
 * caller decides (`dpop.replay.onStoreFailure`, docs/dpop.md).
 */
import { hash } from 'node:crypto'
import type { Redis } from 'ioredis'

/** `fresh`: first sight, now recorded; `replayed`: seen before; `unavailable`: the store could not say. */
export type ReplayVerdict = 'fresh' | 'replayed' | 'unavailable'

export interface ReplayStore {
  /**
   * Record a proof as used until `until` (ms since the epoch) and say whether it was seen before.
   * The memory store answers at once; Redis with a promise that never rejects.
   */
  claim: (jkt: string, jti: string, until: number) => ReplayVerdict | Promise<ReplayVerdict>
}

/** The entry key: 43 characters whatever the `jti`. */
export function replayKey (jkt: string, jti: string): string {
  return hash('sha256', `${jkt}.${jti}`, 'base64url')
}

/**
 * A bounded map in insertion order. Proofs share one lifetime, so the oldest entries expire first and are
 * swept from the front as new ones come. Full of live entries, it refuses (`unavailable`) rather than
 * forget one that could then be replayed.
 */
export class MemoryReplayStore implements ReplayStore {
  private readonly entries = new Map<string, number>()
  private readonly maxEntries: number
  private readonly now: () => number

  constructor (maxEntries: number, now: () => number = Date.now) {
    this.maxEntries = maxEntries
    this.now = now
  }

  get size (): number { return this.entries.size }

  claim (jkt: string, jti: string, until: number): ReplayVerdict {
    const now = this.now()
    const key = replayKey(jkt, jti)
    const seen = this.entries.get(key)
    if (seen !== undefined && seen >= now) return 'replayed'
    if (seen !== undefined) this.entries.delete(key)
    this.sweep(now)
    if (this.entries.size >= this.maxEntries) return 'unavailable'
    this.entries.set(key, until)
    return 'fresh'
  }

  /** Drops expired entries from the front; each entry is dropped once, so the cost is amortized O(1). */
  private sweep (now: number): void {
    for (const [key, until] of this.entries) {
      if (until >= now) return
      this.entries.delete(key)
    }
  }
}

/** The same verdicts from Redis, shared by every process that uses the same prefix. */
export class RedisReplayStore implements ReplayStore {
  private readonly redis: Redis
  private readonly prefix: string
  private readonly now: () => number

  constructor (redis: Redis, keyPrefix: string, now: () => number = Date.now) {
    this.redis = redis
    this.prefix = `${keyPrefix}dpop:`
    this.now = now
  }

  async claim (jkt: string, jti: string, until: number): Promise<ReplayVerdict> {
    const ttl = Math.max(1, Math.ceil(until - this.now()))
    try {
      const set = await this.redis.set(this.prefix + replayKey(jkt, jti), '1', 'PX', ttl, 'NX')
      return set === 'OK' ? 'fresh' : 'replayed'
    } catch {
      return 'unavailable'
    }
  }
}
