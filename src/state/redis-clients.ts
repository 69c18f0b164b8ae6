/**
 * The Redis connections of a process (docs/rate-limits.md#redis): one client per Redis URL, shared by every
 * feature that keeps state there (rate-limit buckets, the DPoP replay store), so a process holds one
 * connection to a Redis however many features use it, and Redis sees one client per replica or worker.
 *
 * Keys are not prefixed by the client but by each store (`redis.keyPrefix`), so that the client depends on
 * the URL alone: a reload that keeps the URL keeps the connection, even with another prefix or timeout
 * (the command timeout of the client in use follows the config). A reload that changes the URL opens a
 * client to the new one and closes the old one after `graceMs`, once the requests still using it are done.
 * Shutdown closes them all.
 */
import type { Redis } from 'ioredis'
import type { CompiledRedis } from '../config/types.js'
import { createRedis } from './redis.js'

/** How long a client no longer named by the config stays open for the requests still using it, milliseconds. */
export const RETIRE_GRACE_MS = 30_000

export class RedisClients {
  private readonly clients = new Map<string, Redis>()
  /** Clients dropped by a reload, each with the timer that closes it: shutdown closes them at once. */
  private readonly retiring = new Map<Redis, NodeJS.Timeout>()
  private readonly create: (config: CompiledRedis) => Redis
  private readonly graceMs: number

  constructor (options: { create?: (config: CompiledRedis) => Redis, graceMs?: number } = {}) {
    this.create = options.create ?? ((config) => createRedis(config))
    this.graceMs = options.graceMs ?? RETIRE_GRACE_MS
  }

  /** The client for the section's URL: the one already open, or a new one (it connects in the background). */
  client (config: CompiledRedis): Redis {
    let client = this.clients.get(config.url)
    if (client === undefined) {
      client = this.create(config)
      this.clients.set(config.url, client)
    }
    // ioredis reads it per command: a reload that changed only the timeout applies it to the kept client.
    client.options.commandTimeout = config.timeoutMs
    return client
  }

  /** The client open to the section's URL, without opening one; undefined when there is none. */
  find (config: CompiledRedis): Redis | undefined {
    return this.clients.get(config.url)
  }

  /**
   * After a reload: every client whose URL the config in force (`config`, null without a redis section)
   * no longer names is dropped now and closed after the grace period.
   */
  retainOnly (config: CompiledRedis | null): void {
    for (const [url, client] of this.clients) {
      if (url === config?.url) continue
      this.clients.delete(url)
      const timer = setTimeout(() => {
        this.retiring.delete(client)
        void quit(client)
      }, this.graceMs)
      this.retiring.set(client, timer.unref())
    }
  }

  /** Shutdown: closes every client (a clean QUIT, or cut), those a reload retired included. */
  async close (): Promise<void> {
    for (const timer of this.retiring.values()) clearTimeout(timer)
    const all = [...this.clients.values(), ...this.retiring.keys()]
    this.clients.clear()
    this.retiring.clear()
    await Promise.all(all.map(quit))
  }
}

async function quit (client: Redis): Promise<void> {
  // QUIT waits for the replies under way; a client that cannot send it is cut.
  await client.quit().then(() => {}, () => { client.disconnect() })
}
