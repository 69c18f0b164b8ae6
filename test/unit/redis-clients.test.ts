/**
 * The process's Redis clients (src/state/redis-clients.ts) with stand-in clients: one per URL whatever the
 * prefix, the timeout following the config, a client no longer named closed after the grace period only,
 * and every client closed on shutdown (a QUIT that fails is cut).
 */
import t from 'tap'
import type { Redis } from 'ioredis'
import type { CompiledRedis } from '../../src/config/types.js'
import { RedisClients } from '../../src/state/redis-clients.js'

interface StandIn { url: string, options: { commandTimeout?: number }, quits: number, disconnects: number, failQuit: boolean }

function clients (graceMs: number): { registry: RedisClients, made: StandIn[] } {
  const made: StandIn[] = []
  const registry = new RedisClients({
    graceMs,
    create: (config) => {
      const client: StandIn = { url: config.url, options: {}, quits: 0, disconnects: 0, failQuit: false }
      made.push(client)
      const redis = {
        options: client.options,
        quit: async () => { client.quits++; if (client.failQuit) throw new Error('not connected'); return 'OK' },
        disconnect: () => { client.disconnects++ }
      }
      return redis as unknown as Redis
    }
  })
  return { registry, made }
}

const section = (url: string, keyPrefix = 'a:', timeoutMs = 500): CompiledRedis => ({ url, keyPrefix, timeoutMs })
const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

t.test('one client per URL: another prefix or timeout is the same client, with the new timeout', async (t) => {
  const { registry, made } = clients(0)
  const first = registry.client(section('redis://a/0'))
  t.equal(registry.client(section('redis://a/0', 'b:', 900)), first)
  t.equal(made.length, 1)
  t.equal(made[0]?.options.commandTimeout, 900)
  t.equal(registry.find(section('redis://b/0')), undefined, 'find opens nothing')
  t.equal(made.length, 1)
})

t.test('retainOnly: the URL in force is kept; another is closed after the grace period, not before', async (t) => {
  const { registry, made } = clients(50)
  registry.client(section('redis://a/0'))
  registry.client(section('redis://b/0'))
  registry.retainOnly(section('redis://b/0'))
  t.equal(registry.find(section('redis://a/0')), undefined, 'no longer handed out')
  t.equal(made[0]?.quits, 0, 'still open for the requests using it')
  // Bounded: 100 ticks of 10 ms.
  for (let i = 0; i < 100 && made[0]?.quits === 0; i++) await tick(10)
  t.equal(made[0]?.quits, 1, 'closed after the grace period')
  t.equal(made[1]?.quits, 0, 'the one in force stays open')
  registry.retainOnly(null)
  for (let i = 0; i < 100 && made[1]?.quits === 0; i++) await tick(10)
  t.equal(made[1]?.quits, 1, 'no redis section: closed too')
})

t.test('close: a client a reload retired is closed at once, not at the end of its grace period', async (t) => {
  const { registry, made } = clients(60_000)
  registry.client(section('redis://a/0'))
  registry.client(section('redis://b/0'))
  registry.retainOnly(section('redis://b/0'))
  t.equal(made[0]?.quits, 0)
  await registry.close()
  t.strictSame(made.map((c) => c.quits), [1, 1])
})

t.test('close: every client, a failed QUIT is cut', async (t) => {
  const { registry, made } = clients(0)
  registry.client(section('redis://a/0'))
  registry.client(section('redis://b/0'))
  const second = made[1]
  if (second !== undefined) second.failQuit = true
  await registry.close()
  t.strictSame(made.map((c) => [c.quits, c.disconnects]), [[1, 0], [1, 1]])
  t.equal(registry.find(section('redis://a/0')), undefined)
})
