/**
 * A gateway's Redis (docs/rate-limits.md#redis): the one client per URL the process holds
 * (`RedisClients`), the section in force, and what hangs on it here: the rate-limit store and the
 * `redis_connected` metric. The engine's DPoP replay store takes its client from the same `RedisClients`.
 * A reload that keeps the URL keeps the connection; one that changes it moves to the new URL and closes the
 * old client once the requests still using it are done; shutdown closes every client.
 */
import type { Redis } from 'ioredis'
import type { CompiledRedis } from '../config/types.js'
import { RedisLimitStore } from '../limits/redis-store.js'
import type { GatewayMetrics } from '../observability/metrics.js'
import { RedisClients } from '../state/redis-clients.js'
import { redisConnected } from '../state/redis.js'

export class GatewayRedis {
  readonly clients: RedisClients
  private readonly metrics: GatewayMetrics
  private section: CompiledRedis | null = null
  private store: RedisLimitStore | null = null
  private watched = false

  constructor (metrics: GatewayMetrics, clients = new RedisClients()) {
    this.metrics = metrics
    this.clients = clients
  }

  /** Takes the config's redis section (null: none): at start, and after each reload's engine is built. */
  use (section: CompiledRedis | null): void {
    this.section = section
    const client = section === null ? null : this.clients.client(section)
    this.store = client === null || section === null ? null : new RedisLimitStore(client, section.keyPrefix)
    this.clients.retainOnly(section)
    if (client !== null && !this.watched) {
      this.watched = true
      this.metrics.watchRedis(() => this.connected() === true)
    }
  }

  /** The client of the section in force, or null. */
  get client (): Redis | null {
    return this.section === null ? null : this.clients.find(this.section) ?? null
  }

  /** The rate-limit store of the section in force, or null (for `RateLimiter`). */
  readonly limitStore = (): RedisLimitStore | null => this.store

  /** Whether the client is connected; undefined without a redis section (for /readyz). */
  connected (): boolean | undefined {
    const client = this.client
    return client === null ? undefined : redisConnected(client)
  }

  /** Shutdown: every client of the process. */
  async close (): Promise<void> {
    await this.clients.close()
  }
}
