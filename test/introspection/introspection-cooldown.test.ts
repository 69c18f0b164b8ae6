/**
 * The cooldown after a failed introspection call (docs/opaque-tokens.md#when-the-endpoint-fails): a real
 * endpoint on port 0 that fails on demand (500, or no answer within the timeout), and an injected clock.
 * During an outage, many requests with new tokens make one call, and each gets 503 at once; a token whose
 * active answer is cached still passes; once the cooldown has passed, one retry; while it is under way,
 * nobody else calls; recovery restores allows. The endpoint's health survives a reload that keeps it.
 */
import t, { type Test } from 'tap'
import { compileTestConfig, issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import { bearer, send, type TestResponse } from '../helpers/http.js'
import { introspectionConfig, startScriptedEndpoint } from './scripted-endpoint.js'

const AUD = 'https://api.test'

interface Endpoint {
  url: string
  mode: 'active' | 'fail' | 'hang'
  /** The token of each call, in order. */
  calls: string[]
}

/** An introspection endpoint: active answers, 500, or no answer at all, as `mode` says. */
async function startEndpoint (t: Test): Promise<Endpoint> {
  const endpoint: Endpoint = { url: '', mode: 'active', calls: [] }
  endpoint.url = (await startScriptedEndpoint(t, ({ form }) => {
    endpoint.calls.push(form.get('token') ?? '')
    if (endpoint.mode === 'hang') return 'hang'
    if (endpoint.mode === 'fail') return { status: 500, body: '{"error":"server_error"}' }
    const answer = { active: true, sub: 'alice', scope: 'read', aud: AUD, exp: Math.floor(Date.now() / 1000) + 3600 }
    return { status: 200, body: JSON.stringify(answer) }
  })).url
  return endpoint
}

const { jwks, echo } = await issuerAndEcho(t)

function config (endpoint: string, cacheTtl = '60s'): Record<string, unknown> {
  return introspectionConfig(jwks, AUD, echo.url,
    { endpoint, clientId: 'gateway', clientSecret: 'cooldown-secret-1', timeout: '300ms', retryAfter: '7s', cooldown: '10s', cacheTtl })
}

function expectUnavailable (t: Test, res: TestResponse, what: string): void {
  t.equal(res.status, 503, `${what}: 503`)
  t.equal(res.json?.error, 'temporarily_unavailable')
  t.equal(res.headers['retry-after'], '7')
}

const call = (gw: TestGateway, token: string): Promise<TestResponse> => send(gw.proxyUrl, '/api/x', { headers: bearer(token) })

t.test('an outage costs the IdP one call per cooldown, not one per request', async (t) => {
  const endpoint = await startEndpoint(t)
  let clock = Date.now()
  const gw = await startGateway(config(endpoint.url), { now: () => clock })
  t.teardown(() => gw.close())
  const upstreamBefore = echo.received.length

  t.equal((await call(gw, 'opaque-cached')).status, 200, 'a token answered while the endpoint is up')
  t.equal(endpoint.calls.length, 1)

  endpoint.mode = 'fail'
  expectUnavailable(t, await call(gw, 'opaque-first'), 'the call that finds the outage')
  t.equal(endpoint.calls.length, 2)
  // Ten new tokens, five of them at once: none is sent to the endpoint.
  for (let i = 0; i < 5; i++) expectUnavailable(t, await call(gw, `opaque-new-${i}`), `new token ${i}`)
  const together = await Promise.all([5, 6, 7, 8, 9].map((i) => call(gw, `opaque-new-${i}`)))
  for (const res of together) expectUnavailable(t, res, 'a concurrent new token')
  t.strictSame(endpoint.calls, ['opaque-cached', 'opaque-first'], 'one call for eleven requests during the outage')

  const cached = await call(gw, 'opaque-cached')
  t.equal(cached.status, 200, 'a cached active answer still passes')
  t.equal(echo.received.length, upstreamBefore + 2, 'the upstream saw the two allowed requests only')
  t.equal(echo.received.at(-1)?.headers['x-auth-subject'], 'alice')

  clock += 9_999
  expectUnavailable(t, await call(gw, 'opaque-early'), 'just before the cooldown ends')
  t.equal(endpoint.calls.length, 2, 'still not asked')

  clock += 1
  expectUnavailable(t, await call(gw, 'opaque-retry'), 'the retry, which fails too')
  t.equal(endpoint.calls.length, 3, 'one retry once the cooldown has passed')
  expectUnavailable(t, await call(gw, 'opaque-after-retry'), 'right after the failed retry')
  t.equal(endpoint.calls.length, 3, 'the cooldown starts again from the retry')

  endpoint.mode = 'active'
  clock += 10_000
  t.equal((await call(gw, 'opaque-recovered')).status, 200, 'the endpoint is back: the next new token passes')
  t.equal((await call(gw, 'opaque-new-0')).status, 200, 'and so does every new token after it')
  t.equal((await call(gw, 'opaque-new-1')).status, 200)
  t.strictSame(endpoint.calls.slice(3), ['opaque-recovered', 'opaque-new-0', 'opaque-new-1'], 'one call per new token again')
  t.equal(echo.received.length, upstreamBefore + 5)

  const metrics = (await send(gw.adminUrl, '/metrics')).body
  t.match(metrics, /scopegate_introspections_total\{issuer="idp",result="status"\} 2\n/, 'calls are counted, refusals in cooldown are not calls')
  t.match(metrics, /scopegate_requests_total\{[^}]*reason="introspection_unavailable"[^}]*\} 14\n/, 'every 503 is a decision')
  t.notOk(gw.rawLog().includes('cooldown-secret-1'), 'no secret in the logs')
  t.notOk(gw.rawLog().includes('opaque-new-3'), 'no token in the logs')
})

t.test('while a retry is under way, other new tokens do not call: the retry that hangs is the only call', async (t) => {
  const endpoint = await startEndpoint(t)
  let clock = Date.now()
  const gw = await startGateway(config(endpoint.url), { now: () => clock })
  t.teardown(() => gw.close())
  endpoint.mode = 'fail'
  expectUnavailable(t, await call(gw, 'opaque-a'), 'the first failure')
  endpoint.mode = 'hang'
  clock += 10_000
  const before = echo.received.length
  const answers = await Promise.all(['opaque-b', 'opaque-c', 'opaque-d', 'opaque-e'].map((token) => call(gw, token)))
  for (const res of answers) expectUnavailable(t, res, 'during the retry')
  t.equal(endpoint.calls.length, 2, 'one retry for four requests, which timed out')
  t.equal(echo.received.length, before, 'the upstream received nothing')
})

t.test('a reload that keeps the endpoint keeps its cooldown; one that changes it starts afresh', async (t) => {
  const endpoint = await startEndpoint(t)
  const clock = Date.now()
  const gw = await startGateway(config(endpoint.url), { now: () => clock })
  t.teardown(() => gw.close())
  endpoint.mode = 'fail'
  expectUnavailable(t, await call(gw, 'opaque-a'), 'the first failure')
  t.equal(await gw.gateway.reload(compileTestConfig(config(endpoint.url, '30s'))), true, 'reloaded (another cacheTtl)')
  expectUnavailable(t, await call(gw, 'opaque-b'), 'after the reload')
  t.equal(endpoint.calls.length, 1, 'still in the cooldown: not asked')
  t.match((await send(gw.adminUrl, '/readyz')).json?.introspection, [{ issuer: 'idp', lastFailure: 'status' }], 'the failure is still shown')
  // The same server under another path: another endpoint, so its health starts unknown.
  endpoint.mode = 'active'
  t.equal(await gw.gateway.reload(compileTestConfig(config(`${endpoint.url}?v=2`))), true, 'reloaded (another endpoint)')
  t.equal((await call(gw, 'opaque-c')).status, 200, 'the new endpoint is asked at once')
  t.equal(endpoint.calls.length, 2)
})
