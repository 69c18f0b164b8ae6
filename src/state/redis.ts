/**
 * A Redis client, for state shared between replicas (rate limits: docs/rate-limits.md#redis; DPoP replay:
 * docs/dpop.md). A gateway holds one per URL (`redis-clients.ts`); keys are prefixed by the stores.
 * Commands fail fast instead of queueing while Redis is away: a request waits at most `timeoutMs` on it,
 * and then the route's `onStoreError` decides. The client reconnects by itself; `status()` says whether
 * it is connected, for `/readyz` and the metrics.
 */
import { Redis } from 'ioredis'
import type { CompiledRedis } from '../config/types.js'

/** Between reconnection attempts, milliseconds: short at first, at most 2 s. */
function reconnectDelay (attempt: number): number {
  return Math.min(50 * 2 ** attempt, 2000)
}

/**
 * A client for the config's `redis` block (its URL and timeout; `keyPrefix` is the stores'). It connects in the background, or with
 * `lazy` at its first command (the DPoP replay store: `scopegate explain` and `scopegate test` build engines
 * that may never use it; its commands wait for the connection, each bounded by the timeout). Closed by
 * `redis.quit()` on shutdown.
 */
export function createRedis (config: CompiledRedis, options: { lazy?: boolean } = {}): Redis {
  const lazy = options.lazy === true
  const client = new Redis(config.url, {
    commandTimeout: config.timeoutMs,
    connectTimeout: Math.max(config.timeoutMs, 1000),
    // Until the first connection, commands wait for it (each within the timeout): the requests right after
    // start, or after a reload that moved to another URL, find Redis. After it, they fail fast while
    // disconnected: a queued command would hold its request until Redis came back.
    enableOfflineQueue: true,
    maxRetriesPerRequest: 0,
    retryStrategy: reconnectDelay,
    lazyConnect: lazy
  })
  // Errors are reported through the commands that fail and through status(); an unhandled 'error' event would crash.
  client.on('error', () => {})
  // ioredis reads the option per command.
  if (!lazy) client.once('ready', () => { client.options.enableOfflineQueue = false })
  return client
}

/** Whether the client can take commands now. */
export function redisConnected (client: Redis): boolean {
  return client.status === 'ready'
}
