/**
 * The re-issued token cache, on a clock the test moves: one entry per (original token, route, narrowed
 * scopes), never served past its exp (nor inside the margin before it), never for another route object or
 * signing key, and bounded.
 */
import { decodeJwt } from 'jose'
import pino from 'pino'
import t from 'tap'
import type { Allow } from '../../src/decision/decide.js'
import { ReissueCache, reissueCacheKey } from '../../src/reissue/reissue-cache.js'
import { Reissuer } from '../../src/reissue/reissuer.js'
import type { VerifiedToken } from '../../src/token/verified-token.js'
import { reissueConfig, routeOf, verifiedToken } from './fixtures.js'

const config = reissueConfig()
const todos = routeOf(config, 'todos')
const reports = routeOf(config, 'reports')
const START = Date.UTC(2030, 0, 1)

function setup (limits: { maxEntries?: number, maxBytes?: number } = {}): { cache: ReissueCache, clock: { now: number } } {
  const clock = { now: START }
  const cache = new ReissueCache({ maxEntries: limits.maxEntries ?? 100, maxBytes: limits.maxBytes ?? 1_000_000, now: () => clock.now })
  return { cache, clock }
}

const alice = verifiedToken(config, { sub: 'alice', scope: 'read:todos', exp: START / 1000 + 3600 })

t.test('the key tells tokens, routes and narrowed scopes apart', async (t) => {
  const same = verifiedToken(config, { sub: 'alice', scope: 'read:todos', exp: START / 1000 + 3600 })
  const bob = verifiedToken(config, { sub: 'bob', scope: 'read:todos', exp: START / 1000 + 3600 })
  t.equal(reissueCacheKey(alice, todos, ['read:todos']), reissueCacheKey(same, todos, ['read:todos']), 'the same token is the same grant')
  t.not(reissueCacheKey(alice, todos, ['read:todos']), reissueCacheKey(bob, todos, ['read:todos']), 'another token')
  t.not(reissueCacheKey(alice, todos, ['read:todos']), reissueCacheKey(alice, reports, ['read:todos']), 'another route')
  t.not(reissueCacheKey(alice, todos, ['read:todos']), reissueCacheKey(alice, todos, []), 'other narrowed scopes')
  t.notMatch(reissueCacheKey(alice, todos, []), /alice/, 'the key holds a digest, not the claims')
})

/**
 * Without a route that reads claims, the verifier keeps none: every verified token shares one empty
 * claims object. The key names the token itself, so that can never hand one user another's token.
 */
const sharedClaims = Object.freeze({})
function withoutClaims (sub: string): VerifiedToken {
  return { ...verifiedToken(config, { sub, scope: 'read:todos', exp: START / 1000 + 3600 }, `jwt-of-${sub}`), claims: sharedClaims }
}

t.test('two users whose verifications share one empty claims object get different keys', async (t) => {
  const [carol, dave] = [withoutClaims('carol'), withoutClaims('dave')]
  t.equal(carol.claims, dave.claims, 'the same claims object')
  t.not(reissueCacheKey(carol, todos, ['read:todos']), reissueCacheKey(dave, todos, ['read:todos']))
})

t.test('two users on one route get different re-issued tokens, each their own, even with no claims kept', async (t) => {
  const reissuer = new Reissuer({ logger: pino({ level: 'silent' }) })
  await reissuer.start(config)
  const allow = (token: VerifiedToken): Allow =>
    ({ allowed: true, route: todos, path: '/todos', query: '', headers: {}, audit: null, token, scopes: ['read:todos'] })
  const [carol, dave] = [withoutClaims('carol'), withoutClaims('dave')]
  const forCarol = await reissuer.reissue(allow(carol))
  const forDave = await reissuer.reissue(allow(dave))
  t.not(forDave, forCarol, 'another user: another token')
  t.equal(decodeJwt(forCarol).sub, 'carol')
  t.equal(decodeJwt(forDave).sub, 'dave')
  t.equal(await reissuer.reissue(allow(carol)), forCarol, 'the same user again: the cached one')
  t.equal(await reissuer.reissue(allow(withoutClaims('carol'))), forCarol, 'the same token verified again (same digest): the cached one')
  t.same([reissuer.cache()?.hits, reissuer.cache()?.misses], [2, 2])
})

t.test('a stored token is served for its key, route object and kid only', async (t) => {
  const { cache } = setup()
  const key = reissueCacheKey(alice, todos, ['read:todos'])
  cache.set(key, { jwt: 'jwt-1', route: todos, kid: 'k1', issuedAt: START, exp: START / 1000 + 60 })
  t.equal(cache.get(key, todos, 'k1'), 'jwt-1')
  t.equal(cache.get(reissueCacheKey(alice, reports, ['read:todos']), reports, 'k1'), undefined, 'another route misses')
  t.equal(cache.hits, 1)
  t.equal(cache.misses, 1)
})

t.test('an entry made under another signing key or another compiled route is not served, and is dropped', async (t) => {
  const { cache } = setup()
  const key = reissueCacheKey(alice, todos, ['read:todos'])
  cache.set(key, { jwt: 'jwt-1', route: todos, kid: 'k1', issuedAt: START, exp: START / 1000 + 60 })
  t.equal(cache.get(key, todos, 'k2'), undefined, 'the signing key changed')
  cache.set(key, { jwt: 'jwt-1', route: todos, kid: 'k1', issuedAt: START, exp: START / 1000 + 60 })
  const reloaded = routeOf(reissueConfig(), 'todos') // same id, new compiled config
  t.equal(cache.get(key, reloaded, 'k1'), undefined, 'the route was recompiled')
  t.equal(cache.size, 0)
})

t.test('never served past its exp: reuse stops 5 s before it', async (t) => {
  const { cache, clock } = setup()
  const key = reissueCacheKey(alice, todos, [])
  cache.set(key, { jwt: 'jwt-1', route: todos, kid: 'k1', issuedAt: START, exp: START / 1000 + 60 })
  clock.now = START + 54_999
  t.equal(cache.get(key, todos, 'k1'), 'jwt-1')
  clock.now = START + 55_000
  t.equal(cache.get(key, todos, 'k1'), undefined, 'inside the margin')
  clock.now = START + 60_000
  t.equal(cache.get(key, todos, 'k1'), undefined, 'at exp')
})

t.test('a short-lived token is reused for half its life at most; one with none left is not stored', async (t) => {
  const { cache, clock } = setup()
  const key = reissueCacheKey(alice, todos, [])
  cache.set(key, { jwt: 'short', route: todos, kid: 'k1', issuedAt: START, exp: START / 1000 + 4 })
  clock.now = START + 1_999
  t.equal(cache.get(key, todos, 'k1'), 'short')
  clock.now = START + 2_000
  t.equal(cache.get(key, todos, 'k1'), undefined)
  cache.set(key, { jwt: 'dead', route: todos, kid: 'k1', issuedAt: clock.now, exp: clock.now / 1000 })
  t.equal(cache.size, 0)
})

t.test('bounded by entries: the least recently used goes first', async (t) => {
  const { cache } = setup({ maxEntries: 2 })
  const tokens = ['a', 'b', 'c'].map((sub) => verifiedToken(config, { sub, exp: START / 1000 + 3600 }))
  const keys = tokens.map((token) => reissueCacheKey(token, todos, []))
  keys.forEach((key, i) => cache.set(key, { jwt: `jwt-${i}`, route: todos, kid: 'k1', issuedAt: START, exp: START / 1000 + 60 }))
  t.equal(cache.size, 2)
  t.equal(cache.get(keys[0] as string, todos, 'k1'), undefined)
  t.equal(cache.get(keys[2] as string, todos, 'k1'), 'jwt-2')
})

t.test('bounded by bytes', async (t) => {
  const { cache } = setup({ maxBytes: 1000 })
  for (let i = 0; i < 10; i++) {
    const key = reissueCacheKey(verifiedToken(config, { sub: `u${i}`, exp: START / 1000 + 3600 }), todos, [])
    cache.set(key, { jwt: 'x'.repeat(300), route: todos, kid: 'k1', issuedAt: START, exp: START / 1000 + 60 })
  }
  t.ok(cache.size <= 2, `${cache.size} entries of ~400 bytes in 1000`)
})
