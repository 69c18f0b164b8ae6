/**
 * The rate-limit rule (`src/limits/gcra.ts`), its memory store and bounds, the bucket key and the 429's
 * fields, with plain values and injected time. The Redis script is held to the same rule against a real
 * Redis in test/e2e/rate-limits-redis.test.ts.
 */
import t from 'tap'
import { compileTestConfig } from '../helpers/gateway.js'
import { gcra } from '../../src/limits/gcra.js'
import { MemoryLimitStore } from '../../src/limits/memory-store.js'
import { RateLimiter, rateLimitKey } from '../../src/limits/rate-limiter.js'
import type { CompiledRoute } from '../../src/config/types.js'
import type { VerifiedToken } from '../../src/token/verified-token.js'
import { ConfigError } from '../../src/config/problems.js'
import { explain } from '../../src/decision/explain.js'

/** 3 requests per 3 s: one every second, a burst of 3. Rows in order, one bucket: [at ms, allowed, remaining, reset ms, retry-after ms]. */
const THREE_PER_3S: Array<[number, boolean, number, number, number]> = [
  [0, true, 2, 1000, 0],
  [0, true, 1, 2000, 0],
  [0, true, 0, 3000, 0],
  [0, false, 0, 3000, 1000],
  [999, false, 0, 2001, 1],
  [1000, true, 0, 3000, 0],
  [1000, false, 0, 3000, 1000],
  [5000, true, 2, 1000, 0],
  [60000, true, 2, 1000, 0]
]

t.test('GCRA: a burst of `limit`, then one request per interval; a refusal spends nothing', async (t) => {
  let tat: number | null = null
  for (const [at, allowed, remaining, resetMs, retryAfterMs] of THREE_PER_3S) {
    const step = gcra(tat, at, 3, 3000)
    t.strictSame(step.result, { allowed, remaining, resetMs, retryAfterMs }, `at ${at} ms`)
    if (!allowed) t.equal(step.tat, null, 'a refused request leaves the bucket as it is')
    if (step.tat !== null) tat = step.tat
  }
})

t.test('memory store: the same table, one bucket per key', async (t) => {
  const store = new MemoryLimitStore()
  for (const [at, allowed, remaining] of THREE_PER_3S) {
    const result = store.take('a', at, 3, 3000)
    t.equal(result.allowed, allowed, `a at ${at}`)
    t.equal(result.remaining, remaining)
  }
  t.equal(store.take('b', 60000, 3, 3000).remaining, 2, 'another key has its own full bucket')
})

t.test('memory store: bounded in entries; expired buckets go first', async (t) => {
  const store = new MemoryLimitStore({ maxEntries: 10 })
  for (let i = 0; i < 10; i++) store.take(`old${i}`, 0, 1, 1000)
  t.equal(store.size, 10)
  // At 2 s every earlier bucket is full again (expired): the sweep frees them all.
  store.take('new', 2000, 1, 1000)
  t.equal(store.size, 1)
  // Live buckets only: the least recently used tenth is evicted, never more than the bound held.
  for (let i = 0; i < 25; i++) store.take(`live${i}`, 3000, 1, 60_000)
  t.ok(store.size <= 10, `size ${store.size}`)
  t.equal(store.take('live24', 3000, 1, 60_000).allowed, false, 'the newest bucket is kept')
})

const route = (rateLimit: Record<string, unknown>, id = 'todos'): CompiledRoute => compileTestConfig({
  upstreams: { u: { url: 'http://127.0.0.1:1' } },
  routes: [{ id, match: { path: '/', prefix: true }, upstream: 'u', auth: 'none', rateLimit }]
}).routes[0] as CompiledRoute

const token = (subject: string | null, clientId: string | null, issuer = 'main'): VerifiedToken =>
  ({ subject, clientId, issuer: { id: issuer } }) as unknown as VerifiedToken

t.test('the bucket key: the configured parts, in order, unambiguous', async (t) => {
  const r = route({ limit: 1, window: '1s', key: ['route', 'client', 'subject', 'address'] })
  const limit = r.rateLimit
  if (limit === null) throw new Error('no limit')
  const cases: Array<[string, VerifiedToken | null, string, VerifiedToken | null, string, boolean]> = [
    ['same token, same address', token('alice', 'web'), '10.0.0.1', token('alice', 'web'), '10.0.0.1', true],
    ['another subject', token('alice', 'web'), '10.0.0.1', token('bob', 'web'), '10.0.0.1', false],
    ['the same sub from another issuer', token('alice', 'web'), '10.0.0.1', token('alice', 'web', 'other'), '10.0.0.1', false],
    ['another client', token('alice', 'web'), '10.0.0.1', token('alice', 'cli'), '10.0.0.1', false],
    ['another address', token('alice', 'web'), '10.0.0.1', token('alice', 'web'), '10.0.0.2', false],
    ['parts that would concatenate alike', token('a;b', 'c'), '1', token('a', 'b;c'), '1', false],
    ['anonymous, same address', null, '10.0.0.1', null, '10.0.0.1', true]
  ]
  for (const [name, a, ipA, b, ipB, same] of cases) {
    t.equal(rateLimitKey(limit, r, a, ipA) === rateLimitKey(limit, r, b, ipB), same, name)
  }
  const byAddress = route({ limit: 1, window: '1s', key: ['address'] })
  if (byAddress.rateLimit === null) throw new Error('no limit')
  t.equal(rateLimitKey(byAddress.rateLimit, byAddress, token('alice', 'web'), '10.0.0.1'),
    rateLimitKey(byAddress.rateLimit, byAddress, token('bob', 'cli'), '10.0.0.1'), 'key [address]: every token from one address shares a bucket')
})

t.test('the limiter: 429 rate_limited with Retry-After and the RateLimit fields', async (t) => {
  let now = 1_000_000
  const limiter = new RateLimiter({ now: () => now })
  const r = route({ limit: 2, window: '10s', key: ['route'] }, 'todos')
  t.equal(limiter.check(r, null, '10.0.0.1'), null)
  t.equal(limiter.check(r, null, '10.0.0.1'), null)
  const refused = limiter.check(r, null, '10.0.0.1')
  if (refused === null || refused instanceof Promise) throw new Error('expected a synchronous refusal')
  t.equal(refused.status, 429)
  t.equal(refused.code, 'rate_limited')
  t.equal(refused.reason, 'rate_limited')
  t.equal(refused.retryAfter, 5, 'one interval (10 s / 2) until the next request')
  t.strictSame(refused.headers, { ratelimit: '"todos";r=0;t=10', 'ratelimit-policy': '"todos";q=2;w=10' })
  now += 5000
  t.equal(limiter.check(r, null, '10.0.0.1'), null, 'allowed again after Retry-After')
})

t.test('the limiter: a route without a limit is never counted', async (t) => {
  const limiter = new RateLimiter()
  const r = compileTestConfig({
    upstreams: { u: { url: 'http://127.0.0.1:1' } },
    routes: [{ id: 'open', match: { path: '/', prefix: true }, upstream: 'u', auth: 'none' }]
  }).routes[0] as CompiledRoute
  for (let i = 0; i < 5; i++) t.equal(limiter.check(r, null, '10.0.0.1'), null)
  t.equal(limiter.memory.size, 0)
})

t.test('config: the window is whole seconds, store redis needs the redis section, the url must be redis://', async (t) => {
  const problems = (config: Record<string, unknown>): string[] => {
    try {
      compileTestConfig(config)
      return []
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      return err.problems.map((p) => `${p.path}: ${p.message}`)
    }
  }
  const withLimit = (rateLimit: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    upstreams: { u: { url: 'http://127.0.0.1:1' } },
    routes: [{ id: 'r', match: { path: '/', prefix: true }, upstream: 'u', auth: 'none', rateLimit }],
    ...extra
  })
  t.match(problems(withLimit({ limit: 1, window: '1500ms' })), [/routes\[0\]\.rateLimit\.window: must be a whole number of seconds/])
  t.match(problems(withLimit({ limit: 1, window: '500ms' })), [/routes\[0\]\.rateLimit\.window/])
  t.match(problems(withLimit({ limit: 1, window: '1m', store: 'redis' })), [/routes\[0\]\.rateLimit\.store: redis needs a top-level redis section/])
  t.match(problems(withLimit({ limit: 0, window: '1m' })), [/routes\[0\]\.rateLimit\.limit/])
  t.match(problems(withLimit({ limit: 1, window: '1m', key: ['tenant'] })), [/routes\[0\]\.rateLimit\.key\[0\]/])
  t.match(problems(withLimit({ limit: 1, window: '1m' }, { redis: { url: 'http://127.0.0.1:6379' } })), [/redis\.url: must be a redis:\/\/ or rediss:\/\/ URL/])
  t.strictSame(problems(withLimit({ limit: 1, window: '1m', store: 'redis' }, { redis: { url: 'redis://127.0.0.1:6379/0' } })), [])
  const compiled = compileTestConfig(withLimit({ limit: 100, window: '1m' }, { redis: { url: 'redis://127.0.0.1:6379/0' } }))
  t.strictSame(compiled.redis, { url: 'redis://127.0.0.1:6379/0', keyPrefix: 'scopegate:', timeoutMs: 500 })
  t.strictSame(compiled.routes[0]?.rateLimit, {
    limit: 100, windowMs: 60_000, key: ['route', 'client', 'subject'], store: 'memory', onStoreError: 'open', policyField: '"r";q=100;w=60'
  })
})

t.test('explain shows the route\'s limit and the bucket the request would spend, without spending it', async (t) => {
  const config = compileTestConfig({
    issuers: [{ id: 'main', issuer: 'https://idp.example', jwksUri: 'https://idp.example/jwks', algorithms: ['ES256'], audiences: ['api'] }],
    upstreams: { u: { url: 'http://127.0.0.1:1' } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'u', rateLimit: { limit: 1, window: '1m', key: ['route', 'subject', 'address'] } }]
  })
  const claims = { iss: 'https://idp.example', aud: 'api', sub: 'alice', exp: Math.floor(Date.now() / 1000) + 600 }
  for (let i = 0; i < 2; i++) {
    const { lines, allowed } = await explain(config, { method: 'GET', path: '/todos', ip: '10.0.0.7', claims })
    t.equal(allowed, true, `explanation ${i + 1}: a limit of 1 is not spent by explaining`)
    t.ok(lines.includes('ratelimit 1 per 60s (store memory, on store error open); bucket route=todos subject=main/alice address=10.0.0.7'), lines.join('\n'))
  }
})
