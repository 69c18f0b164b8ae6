/**
 * Tracing under `server.workers: 2`, as `scopegate serve` runs it (docs/observability.md#workers): each
 * worker exports its own spans, told apart by the `scopegate.worker` resource attribute, and SIGTERM
 * exports what each still has batched before the process exits.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { issuerAndEcho } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { freePort, spawnServe, writeConfig } from '../ops/support.js'
import { SPAN_KIND, startOtlpReceiver } from './otlp-receiver.js'

const AUD = 'https://todo.api'

t.test('each worker exports its own spans, named by scopegate.worker; SIGTERM flushes them', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-tracing-workers-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'scopegate.yaml')
  const [proxyPort, adminPort] = [await freePort(), await freePort()]
  await writeConfig(file, {
    server: { proxy: { host: '127.0.0.1', port: proxyPort }, admin: { host: '127.0.0.1', port: adminPort }, workers: 2, shutdownTimeout: '5s' },
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' }],
    telemetry: { tracing: { enabled: true, endpoint: receiver.url } }
  })
  const served = spawnServe(file, { OTEL_SERVICE_NAME: 'edge-cluster' })
  t.teardown(() => served.kill())
  await served.waitForLine('the group to listen', (line) => line.msg === 'scopegate listening' && line.worker === 'primary', 60_000) // three node processes on a loaded host
  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice' })

  const REQUESTS = 20
  for (let i = 0; i < REQUESTS; i++) {
    // A new connection each time: the primary hands connections to the workers in turn.
    t.equal((await send(`http://127.0.0.1:${proxyPort}`, `/todos/${i}`, { headers: bearer(token) })).status, 200)
  }
  t.equal(echo.received.length, REQUESTS)
  served.signal('SIGTERM')
  const { code } = await served.exited
  t.equal(code, 0, 'a clean exit')

  const servers = receiver.spans.filter((s) => s.kind === SPAN_KIND.server)
  t.equal(servers.length, REQUESTS, 'every request\'s server span was exported by the time the process exited')
  const workers = new Set(servers.map((s) => s.resource['scopegate.worker']))
  t.same([...workers].sort(), ['1', '2'], 'from both workers')
  t.ok(servers.every((s) => s.resource['service.name'] === 'edge-cluster'), 'the service name from OTEL_SERVICE_NAME')
  t.equal(new Set(servers.map((s) => s.resource['service.instance.id'])).size, 2, 'one instance id per worker')
  const lines = served.lines.filter((l) => l.msg === 'decision')
  t.same(new Set(lines.map((l) => l.trace_id)), new Set(servers.map((s) => s.traceId)), 'the decision lines name the exported traces')
})
