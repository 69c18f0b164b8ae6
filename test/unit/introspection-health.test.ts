/**
 * The introspection endpoint's health (src/token/introspection-health.ts) with plain values and injected
 * time: the cooldown after a failure, one call at a time while failing, and the states readiness reads.
 */
import t from 'tap'
import { IntrospectionHealth } from '../../src/token/introspection-health.js'

const COOLDOWN = 5_000

t.test('never called: unknown, and calls are free', async (t) => {
  const health = new IntrospectionHealth()
  t.equal(health.state(), 'unknown')
  t.ok(health.mayCall(0, COOLDOWN))
  t.strictSame(health.status('idp', 0), { issuer: 'idp', state: 'unknown' })
})

t.test('a failure before any answer: unavailable, one call per cooldown from the last attempt', async (t) => {
  const health = new IntrospectionHealth()
  health.attempt(1_000)('timeout', 3_000)
  t.equal(health.state(), 'unavailable')
  t.strictSame(health.status('idp', 13_000), { issuer: 'idp', state: 'unavailable', lastFailure: 'timeout', failingForSeconds: 10 })
  const table: Array<[now: number, may: boolean]> = [[3_000, false], [5_999, false], [6_000, true], [60_000, true]]
  for (const [now, may] of table) t.equal(health.mayCall(now, COOLDOWN), may, `at ${now} ms`)
  t.ok(health.mayCall(1_000, 0), 'cooldown 0s: always')
})

t.test('while failing, a retry under way holds every other call, past the cooldown too', async (t) => {
  const health = new IntrospectionHealth()
  health.attempt(0)('status', 0)
  const settle = health.attempt(10_000)
  t.notOk(health.mayCall(20_000, COOLDOWN), 'the retry is under way')
  settle('status', 12_000)
  settle(null, 12_000)
  t.equal(health.state(), 'unavailable', 'a settle counts once')
  t.notOk(health.mayCall(14_999, COOLDOWN), 'the cooldown counts from the start of the retry')
  t.ok(health.mayCall(15_000, COOLDOWN))
})

t.test('an answer ends the outage; a failure after one is failing, not unavailable', async (t) => {
  const health = new IntrospectionHealth()
  health.attempt(0)('network', 0)
  health.attempt(5_000)(null, 5_100)
  t.equal(health.state(), 'ok')
  t.ok(health.mayCall(5_100, COOLDOWN))
  // Healthy: calls run side by side, as many as there are new tokens.
  const a = health.attempt(6_000)
  t.ok(health.mayCall(6_000, COOLDOWN), 'while answering, a call under way holds nobody')
  a('status', 6_500)
  t.equal(health.state(), 'failing')
  t.strictSame(health.status('idp', 8_500), { issuer: 'idp', state: 'failing', lastFailure: 'status', failingForSeconds: 2 })
  t.equal(health.failure, 'status')
})
