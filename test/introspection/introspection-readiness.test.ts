/**
 * `/readyz`, the `ready` metric and `introspection_state` include each issuer's introspection endpoint
 * (docs/operations.md#endpoints), by the rule the keys follow: an endpoint that fails and has never
 * answered since start makes the gateway not ready (`unavailable`, as an issuer whose keys were never
 * fetched); one that answered before and fails now is `failing`, shown but still ready (as stale keys).
 * Asking `/readyz` retries an unavailable endpoint, at most once per cooldown, so an instance kept out of
 * traffic recovers. Then the same with `workers: 2`, where the primary's `/readyz` needs every worker ready.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { introspectionConfig, startScriptedEndpoint } from './scripted-endpoint.js'
import { freePort, metric, parseMetrics, spawnServe, waitFor, writeConfig } from '../ops/support.js'

const AUD = 'https://api.test'
const PROBE_TOKEN = 'scopegate-readiness-probe'

interface Endpoint {
  url: string
  failing: boolean
  /** The token of each call, in order. */
  calls: string[]
}

/** An introspection endpoint that fails (503) on demand; otherwise `active: false` for the probe token, active for any other. */
async function startEndpoint (t: Test): Promise<Endpoint> {
  const endpoint: Endpoint = { url: '', failing: true, calls: [] }
  endpoint.url = (await startScriptedEndpoint(t, ({ form }) => {
    const token = form.get('token') ?? ''
    endpoint.calls.push(token)
    if (endpoint.failing) return { status: 503, body: '{"error":"temporarily_unavailable"}' }
    const answer = token === PROBE_TOKEN ? { active: false } : { active: true, sub: 'alice', aud: AUD, exp: Math.floor(Date.now() / 1000) + 3600 }
    return { status: 200, body: JSON.stringify(answer) }
  })).url
  return endpoint
}

const { jwks, echo } = await issuerAndEcho(t)

function config (endpoint: string, cooldown = '10s'): Record<string, unknown> {
  return introspectionConfig(jwks, AUD, echo.url, { endpoint, clientId: 'gateway', clientSecret: 'ready-secret-9', timeout: '500ms', cooldown })
}

async function readiness (gw: TestGateway): Promise<{ status: number, introspection: unknown, ready: number | undefined, states: Record<string, number | undefined> }> {
  const res = await send(gw.adminUrl, '/readyz')
  const samples = parseMetrics((await send(gw.adminUrl, '/metrics')).body)
  const states: Record<string, number | undefined> = {}
  for (const state of ['unknown', 'ok', 'failing', 'unavailable']) states[state] = metric(samples, 'scopegate_introspection_state', { issuer: 'idp', state })
  return { status: res.status, introspection: res.json?.introspection, ready: metric(samples, 'scopegate_ready'), states }
}

t.test('an endpoint that never answered makes the gateway not ready; /readyz retries it once per cooldown', async (t) => {
  const endpoint = await startEndpoint(t)
  let clock = Date.now()
  const gw = await startGateway(config(endpoint.url), { now: () => clock })
  t.teardown(() => gw.close())

  const before = await readiness(gw)
  t.equal(before.status, 200, 'ready while the endpoint has not been called: nothing is known against it')
  t.strictSame(before.introspection, [{ issuer: 'idp', state: 'unknown' }])
  t.equal(before.states.unknown, 1)
  t.equal(endpoint.calls.length, 0, 'readiness does not call an endpoint that has not failed')

  const res = await send(gw.proxyUrl, '/api/x', { headers: bearer('opaque-first') })
  t.equal(res.status, 503)
  t.equal(echo.received.filter((r) => r.url === '/api/x').length, 0, 'the upstream received nothing')
  const down = await readiness(gw)
  t.equal(down.status, 503, 'not ready: the endpoint fails and never answered')
  t.match(down.introspection, [{ issuer: 'idp', state: 'unavailable', lastFailure: 'status' }])
  t.equal(down.ready, 0, 'scopegate_ready 0')
  t.strictSame([down.states.unavailable, down.states.ok], [1, 0])
  t.equal(endpoint.calls.length, 1, 'within the cooldown /readyz does not ask')

  // The IdP comes back; a cooldown later, /readyz asks it with the probe token and the gateway is ready again.
  endpoint.failing = false
  clock += 10_000
  const ready = await waitFor('/readyz to recover', async () => {
    const now = await readiness(gw)
    return now.status === 200 ? now : undefined
  })
  t.strictSame(endpoint.calls, ['opaque-first', PROBE_TOKEN], 'one probe call, with the probe token')
  t.strictSame(ready.introspection, [{ issuer: 'idp', state: 'ok' }])
  t.equal(ready.ready, 1)
  t.strictSame([ready.states.unavailable, ready.states.ok], [0, 1])
  t.notOk(gw.rawLog().includes('ready-secret-9'), 'no secret in the logs')
})

t.test('an endpoint that answered before and fails now is failing: shown, still ready, not probed', async (t) => {
  const endpoint = await startEndpoint(t)
  endpoint.failing = false
  let clock = Date.now()
  const gw = await startGateway(config(endpoint.url), { now: () => clock })
  t.teardown(() => gw.close())
  t.equal((await send(gw.proxyUrl, '/api/x', { headers: bearer('opaque-good') })).status, 200)
  endpoint.failing = true
  t.equal((await send(gw.proxyUrl, '/api/x', { headers: bearer('opaque-new') })).status, 503)
  clock += 10_000
  const degraded = await readiness(gw)
  t.equal(degraded.status, 200, 'still ready: cached tokens pass, and the endpoint worked since start')
  t.match(degraded.introspection, [{ issuer: 'idp', state: 'failing', lastFailure: 'status', failingForSeconds: 10 }])
  t.equal(degraded.ready, 1)
  t.strictSame([degraded.states.failing, degraded.states.unavailable], [1, 0])
  t.equal((await send(gw.proxyUrl, '/api/x', { headers: bearer('opaque-good') })).status, 200, 'the cached token passes')
  t.equal(endpoint.calls.length, 2, 'readiness does not probe a failing endpoint: traffic retries it')
})

t.test('workers: 2: the group is not ready while a worker finds the endpoint unavailable', async (t) => {
  t.setTimeout(180_000)
  const endpoint = await startEndpoint(t)
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-intro-ready-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'scopegate.yaml')
  const [proxyPort, adminPort] = [await freePort(), await freePort()]
  await writeConfig(file, {
    // A cooldown no slow machine outlasts: /readyz must not retry during this test.
    ...config(endpoint.url, '10m'),
    server: { proxy: { host: '127.0.0.1', port: proxyPort }, admin: { host: '127.0.0.1', port: adminPort }, workers: 2, shutdownTimeout: '5s' }
  })
  const served = spawnServe(file)
  t.teardown(() => served.kill())
  await served.waitForLine('the group to listen', (line) => line.msg === 'scopegate listening' && line.worker === 'primary', 60_000)
  const admin = `http://127.0.0.1:${adminPort}`
  t.equal((await send(admin, '/readyz')).status, 200, 'ready before any call')

  const res = await send(`http://127.0.0.1:${proxyPort}`, '/api/x', { headers: bearer('opaque-cluster') })
  t.equal(res.status, 503)
  const group = await send(admin, '/readyz')
  t.equal(group.status, 503, 'the group is not ready')
  const processes = group.json?.processes as Array<{ status: string, introspection: Array<{ state: string }> }>
  t.equal(processes.length, 2)
  t.strictSame(processes.map((p) => p.introspection[0]?.state).sort(), ['unavailable', 'unknown'], 'the worker that called says unavailable')
  t.strictSame(processes.map((p) => p.status).sort(), ['not_ready', 'ready'])
  const samples = parseMetrics((await send(admin, '/metrics')).body)
  t.equal(metric(samples, 'scopegate_ready'), 0, 'the group metric is the smallest')
  t.equal(metric(samples, 'scopegate_introspection_state', { issuer: 'idp', state: 'unavailable' }), 1, 'the worst state shows')
  t.equal(endpoint.calls.length, 1, 'one call')
})
