/**
 * loadConfig reports schema problems and meaning problems (src/config/valid-parts.ts) in one pass: the
 * parts of the config the schema accepts are compiled with placeholders for the rest, and nothing is
 * said about a placeholder or twice about one path.
 */
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { ConfigError, type ConfigProblem } from '../../src/config/problems.js'

async function problemsOf (t: Test, config: unknown): Promise<readonly ConfigProblem[]> {
  const dir = t.testdir({ 'scopegate.json': typeof config === 'string' ? config : JSON.stringify(config) })
  try {
    await loadConfig(join(dir, 'scopegate.json'), {})
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('the config loaded')
}

const route = (id: string, upstream: string, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ id, match: { path: `/${id}` }, upstream, auth: 'none', ...extra })

t.test('one schema problem and one unknown upstream: both, with their paths', async (t) => {
  t.same(await problemsOf(t, {
    upstreams: { api: { url: 'http://api.internal' } },
    routes: [route('a', 'nowhere'), route('b', 'api', { mode: 'sometimes' })]
  }), [
    { path: 'routes[1].mode', message: 'must be one of: enforce, audit' },
    { path: 'routes[0].upstream', message: 'unknown upstream "nowhere"' }
  ])
})

t.test('an upstream with a schema problem is still known by its id; one with an invalid id is not', async (t) => {
  t.same(await problemsOf(t, {
    upstreams: { api: { url: 42 }, 'bad id': { url: 'http://a.internal' } },
    routes: [route('a', 'api'), route('b', 'bad id'), route('c', 'gone')],
    colour: 'blue'
  }), [
    { path: '', message: 'unknown key "colour"' },
    { path: 'upstreams', message: 'invalid key "bad id": must start with a letter or digit and contain only letters, digits, ".", "_" and "-"' },
    { path: 'upstreams.api.url', message: 'must be a string' },
    { path: 'routes[1].upstream', message: 'unknown upstream "bad id"' },
    { path: 'routes[2].upstream', message: 'unknown upstream "gone"' }
  ])
})

t.test('a wrong server section is set aside; the routes are still checked', async (t) => {
  const problems = await problemsOf(t, {
    server: { workers: 'many', proxy: { port: 'eighty' } },
    upstreams: { api: { url: 'http://api.internal' } },
    routes: [route('a', 'api'), route('a', 'api', { match: { path: '/b' } })]
  })
  t.same(problems.map((p) => p.path), ['server.proxy.port', 'server.workers', 'routes[1].id'])
})

t.test('nothing to check beyond the schema: only its problems', async (t) => {
  t.same(await problemsOf(t, { upstreams: { api: { url: 'http://api.internal' } } }), [{ path: 'routes', message: 'is required' }])
  t.same(await problemsOf(t, '[1, 2]'), [{ path: '', message: 'the config must be an object (a mapping with at least upstreams and routes)' }])
  t.match(await problemsOf(t, '{"upstreams": '), [{ path: '', message: /^JSON syntax error/ }])
})
