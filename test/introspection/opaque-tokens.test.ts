/**
 * Opaque tokens end to end (docs/opaque-tokens.md): a real oidc-provider issues opaque access tokens and
 * answers RFC 7662 introspection; a real gateway on port 0 asks it, caches the answers and forwards the
 * identity. Every case asserts what the client got, what the upstream received (or that it received
 * nothing) and how many introspection calls the IdP saw. The gateway's clock is injected, so the
 * revocation window is crossed without sleeping.
 */
import t from 'tap'
import type { Test } from 'tap'
import { startEcho } from '../helpers/echo-upstream.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { bearer, send, type TestResponse } from '../helpers/http.js'
import { startIdp } from '../helpers/idp.js'
import { explain } from '../../src/decision/explain.js'

const SECRET = 'introspection-secret-9f3a1c'
const AUD = 'https://api.test'

const echo = await startEcho()
t.teardown(() => echo.close())

const idp = await startIdp({
  clients: [
    { clientId: 'gateway', clientSecret: SECRET },
    { clientId: 'todo-cli', clientSecret: 'todo-cli-secret', scope: 'read write' }
  ],
  resources: { [AUD]: { scope: 'read write' } },
  introspection: true
})
t.teardown(() => idp.close())

interface Rig {
  gw: TestGateway
  clock: { now: number }
  results: string[]
}

async function rig (t: Test, introspection: Record<string, unknown> = {}): Promise<Rig> {
  const clock = { now: Date.now() }
  const results: string[] = []
  const gw = await startGateway({
    issuers: [{
      id: 'idp',
      issuer: idp.issuer,
      discovery: true,
      algorithms: ['RS256'],
      audiences: [AUD],
      introspection: { clientId: 'gateway', clientSecret: SECRET, authMethod: 'client_secret_post', ...introspection }
    }],
    upstreams: { api: { url: echo.url } },
    // oidc-provider's opaque tokens carry no aud: the route's audience policy judges that, as for a JWT.
    defaults: { policy: { audience: { denyMissing: false } } },
    routes: [
      { id: 'api', match: { path: '/api', prefix: true }, upstream: 'api' },
      { id: 'writes', match: { path: '/write', prefix: true }, upstream: 'api', policy: { scopes: { require: ['write'] } } }
    ]
  }, { now: () => clock.now, introspectionEvents: (issuer, result) => { results.push(`${issuer}:${result}`) } })
  t.teardown(() => gw.close())
  return { gw, clock, results }
}

function get (r: Rig, token: string, path = '/api/items'): Promise<TestResponse> {
  return send(r.gw.proxyUrl, path, { headers: bearer(token) })
}

function expectNoLeak (t: Test, r: Rig, tokens: string[]): void {
  const log = r.gw.rawLog()
  t.notOk(log.includes(SECRET), 'the client secret is in no log line')
  for (const token of tokens) t.notOk(log.includes(token), 'the token is in no log line')
}

t.test('an opaque token is introspected once, then answered from the cache, and its identity reaches the upstream', async (t) => {
  const r = await rig(t)
  const token = await idp.token({ clientId: 'todo-cli', scope: 'read write' })
  t.notMatch(token, /^[^.]+\.[^.]+\.[^.]*$/, 'the IdP issued an opaque token, not a JWT')
  const calls = idp.introspections()
  const before = echo.received.length

  const first = await get(r, token)
  t.equal(first.status, 200)
  t.equal(echo.received.length, before + 1, 'the upstream got the request')
  const seen = echo.received.at(-1)
  t.equal(seen?.headers['x-auth-client-id'], 'todo-cli')
  t.equal(seen?.headers['x-auth-scopes'], 'read write')
  t.equal(seen?.headers['x-auth-issuer'], idp.issuer)
  t.equal(idp.introspections(), calls + 1, 'one introspection call')

  const second = await get(r, token, '/write/1')
  t.equal(second.status, 200)
  t.equal(echo.received.length, before + 2)
  t.equal(idp.introspections(), calls + 1, 'the second request was answered from the cache')

  const lines = r.gw.decisions()
  t.same(lines.slice(-2).map((l) => l.tokenPath), ['introspection', 'cache'], 'the decision log says which path the token took')
  t.same(r.results, ['idp:active'])
  expectNoLeak(t, r, [token])

  const ready = await send(r.gw.adminUrl, '/readyz')
  t.equal(ready.status, 200)
  t.same(ready.json?.introspection, [{ issuer: 'idp', state: 'ok' }])
  const metrics = await send(r.gw.adminUrl, '/metrics')
  t.match(metrics.body, /scopegate_introspections_total\{issuer="idp",result="active"\} 1/)
})

t.test('the cache keeps an answer no longer than cacheTtl: past it, the IdP is asked again', async (t) => {
  const r = await rig(t, { cacheTtl: '30s' })
  const token = await idp.token({ clientId: 'todo-cli', scope: 'read' })
  const calls = idp.introspections()
  t.equal((await get(r, token)).status, 200)
  r.clock.now += 29_000
  t.equal((await get(r, token)).status, 200)
  t.equal(idp.introspections(), calls + 1, 'within the window: cached')
  r.clock.now += 2_000
  t.equal((await get(r, token)).status, 200)
  t.equal(idp.introspections(), calls + 2, 'past the window: asked again')
})

t.test('scopes from the introspection answer feed the policy: a token without write is refused on a write route', async (t) => {
  const r = await rig(t)
  const token = await idp.token({ clientId: 'todo-cli', scope: 'read' })
  const before = echo.received.length
  const res = await get(r, token, '/write/1')
  t.equal(res.status, 403)
  t.equal(res.json?.error, 'insufficient_scope')
  t.equal(echo.received.length, before, 'the upstream received nothing')
})

t.test('an unknown opaque token is inactive: 401 invalid_token, and the refusal is remembered', async (t) => {
  const r = await rig(t)
  const token = 'not-a-token-the-idp-issued-0123456789'
  const calls = idp.introspections()
  const before = echo.received.length
  for (let i = 0; i < 2; i++) {
    const res = await get(r, token)
    t.equal(res.status, 401)
    t.equal(res.json?.error, 'invalid_token')
    t.match(res.headers['www-authenticate'], /error="invalid_token"/)
  }
  t.equal(echo.received.length, before, 'the upstream received nothing')
  t.equal(idp.introspections(), calls + 1, 'one call: the refusal is cached')
  t.same(r.gw.decisions().map((l) => [l.reason, l.tokenPath]), [['token_inactive', 'introspection'], ['token_inactive', 'cache']])
  expectNoLeak(t, r, [token])
})

t.test('concurrent requests with the same new token share one introspection call', async (t) => {
  const r = await rig(t)
  const token = await idp.token({ clientId: 'todo-cli', scope: 'read' })
  const calls = idp.introspections()
  const before = echo.received.length
  const answers = await Promise.all(Array.from({ length: 8 }, async () => await get(r, token)))
  t.same(answers.map((a) => a.status), Array(8).fill(200))
  t.equal(echo.received.length, before + 8)
  t.equal(idp.introspections(), calls + 1, 'one call for eight requests')
})

t.test('a JWT still goes to the JWT verifier: no introspection call', async (t) => {
  const r = await rig(t)
  const token = await idp.token({ clientId: 'todo-cli', scope: 'read', resource: AUD })
  const calls = idp.introspections()
  const res = await get(r, token)
  t.equal(res.status, 200)
  t.equal(idp.introspections(), calls, 'no introspection')
  t.equal(r.gw.decisions().at(-1)?.tokenPath, 'jwt')
})

t.test('scopegate explain shows the introspection step, and never the secret', async (t) => {
  const r = await rig(t)
  const token = await idp.token({ clientId: 'todo-cli', scope: 'read write' })
  const engine = r.gw.gateway.current()
  const first = await explain(engine.config, { method: 'GET', path: '/write/1', ip: '127.0.0.1', token, engine })
  t.ok(first.allowed)
  t.match(first.lines.join('\n'), /^introspect +issuer idp answered active, expires /m)
  t.match(first.lines.join('\n'), /^token +introspected: issuer idp$/m)
  const again = await explain(engine.config, { method: 'GET', path: '/write/1', ip: '127.0.0.1', token, engine })
  t.match(again.lines.join('\n'), /^introspect +issuer idp answered active \(remembered answer\)/m)
  const text = [...first.lines, ...again.lines].join('\n')
  t.notOk(text.includes(SECRET) || text.includes(token), 'neither the secret nor the token')
})
