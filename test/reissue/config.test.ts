/**
 * The `reissue` config section: keys are optional (a key is then generated), but not where several
 * workers would each generate their own; the ttl is at least a second.
 */
import t from 'tap'
import { ConfigError } from '../../src/config/problems.js'
import { compileTestConfig } from '../helpers/gateway.js'

function withReissue (reissue: Record<string, unknown>, server: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server,
    upstreams: { api: { url: 'http://api.internal' } },
    reissue: { issuer: 'https://scopegate.test', ...reissue },
    routes: [{ id: 'r', match: { path: '/r' }, upstream: 'api', auth: 'none', forward: { authorization: 'reissue' } }]
  }
}

function problemsOf (config: Record<string, unknown>): string[] {
  try {
    compileTestConfig(config)
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`)
    throw err
  }
  return []
}

t.test('keys may be left out: the defaults are ES256 and 60s', async (t) => {
  const config = compileTestConfig(withReissue({}))
  t.same(config.reissue, { issuer: 'https://scopegate.test', ttl: '60s', algorithm: 'ES256' })
})

t.test('an empty key list is still an error', async (t) => {
  t.same(problemsOf(withReissue({ keys: [] })), ['reissue.keys: must not be empty'])
})

t.test('without keys, several workers are refused: each would generate a different key', async (t) => {
  for (const workers of [2, 'auto']) {
    t.same(problemsOf(withReissue({}, { workers })), ['reissue.keys: is required unless server.workers is 1: each worker would generate a different key'], `workers: ${workers}`)
  }
  t.same(problemsOf(withReissue({ keys: [{ file: 'k.pem' }] }, { workers: 2 })), [], 'with key files, any number of workers')
})

t.test('the ttl is at least 1s', async (t) => {
  t.same(problemsOf(withReissue({ ttl: '500ms' })), ['reissue.ttl: must be at least 1s'])
  t.same(problemsOf(withReissue({ ttl: '0s' })), ['reissue.ttl: must be at least 1s'])
  t.same(problemsOf(withReissue({ ttl: '1s' })), [])
})
