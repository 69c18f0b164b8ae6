/**
 * The Redis client for state shared between replicas (docs/config.md, `redis`). One per process: commands
 * time out after `redis.timeout` and are not retried, so a Redis that is down costs a request at most
 * that long, and the caller decides what a missing answer means. Closed on shutdown.
 */
import { Redis } from 'ioredis'
import type { CompiledRedis } from '../config/types.js'

/** `onError`: told of connection errors (ioredis reconnects by itself); without a listener they would be printed. */
export function createRedis (config: CompiledRedis, onError: (err: Error) => void = () => {}): Redis {
  const redis = new Redis(config.url, {
    commandTimeout: config.timeoutMs,
    connectTimeout: Math.max(config.timeoutMs, 1000),
    maxRetriesPerRequest: 0,
    // Reconnect forever, but no faster than every second: requests meanwhile fail at once or within the timeout.
    retryStrategy: (times) => Math.min(times * 100, 1000),
    // Connects at the first command: `scopegate explain` and `scopegate test` build engines that may never use it.
    lazyConnect: true
  })
  redis.on('error', onError)
  return redis
}
