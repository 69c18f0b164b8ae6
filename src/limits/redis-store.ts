/**
 * Rate-limit buckets in Redis (`store: redis`), shared by every replica that uses the same Redis and
 * `keyPrefix`. One Lua script reads and writes a bucket atomically, so two gateways never both spend the
 * last request of a bucket. It applies `gcra.ts` on Redis's own clock (`TIME`), so replicas with skewed
 * clocks still agree; the key expires when the bucket is full again, which bounds Redis memory.
 */
import type { Redis } from 'ioredis'
import type { LimitResult } from './gcra.js'

/** KEYS[1] the bucket; ARGV limit, window (ms). Returns allowed (0/1), remaining, reset ms, retry-after ms. */
export const GCRA_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local nextTat = tat + interval
if nextTat - now > window then
  return {0, 0, math.ceil(tat - now), math.ceil(nextTat - now - window)}
end
redis.call('SET', KEYS[1], string.format('%.3f', nextTat), 'PX', math.ceil(nextTat - now))
return {1, math.floor((window - (nextTat - now)) / interval), math.ceil(nextTat - now), 0}
`

interface WithScript {
  scopegateGcra: (key: string, limit: number, windowMs: number) => Promise<[number, number, number, number]>
}

export class RedisLimitStore {
  private readonly client: Redis & WithScript
  /** `redis.keyPrefix`: the client is shared with other stores and prefixes nothing itself. */
  private readonly prefix: string

  constructor (client: Redis, prefix = '') {
    this.prefix = prefix
    // defineCommand sends the script once (EVALSHA after), reloading it if Redis forgot it.
    if (!('scopegateGcra' in client)) client.defineCommand('scopegateGcra', { numberOfKeys: 1, lua: GCRA_SCRIPT })
    this.client = client as Redis & WithScript
  }

  /** One request against the bucket `key`. Rejects when Redis does not answer within the client's timeout. */
  async take (key: string, limit: number, windowMs: number): Promise<LimitResult> {
    const [allowed, remaining, resetMs, retryAfterMs] = await this.client.scopegateGcra(`${this.prefix}rl:${key}`, limit, windowMs)
    return { allowed: allowed === 1, remaining, resetMs, retryAfterMs }
  }
}
