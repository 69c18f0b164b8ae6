/**
 * The status page under `server.workers: 2` (docs/observability.md#status-page): whichever worker
 * answers `/status`, it shows the whole group (both workers, every denial counted once), and a live feed
 * open on one worker receives the denials every worker makes, relayed through the primary.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { issuerAndEcho } from '../helpers/gateway.js'
import { openEvents } from '../helpers/event-stream.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import type { DenialEntry } from '../../src/observability/denial-feed.js'
import { freePort, spawnServe, waitFor, writeConfig } from './support.js'

const AUD = 'https://todo.api'
const START_MS = 60_000 // a loaded CI machine takes a while to boot three node processes
const DENIALS = 12

t.test('two workers: one page for the group, and every worker\'s denials on the live feed', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-status-cluster-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'scopegate.yaml')
  const [proxyPort, adminPort] = [await freePort(), await freePort()]
  await writeConfig(file, {
    server: {
      proxy: { host: '127.0.0.1', port: proxyPort },
      admin: { host: '127.0.0.1', port: adminPort, status: { enabled: true } },
      workers: 2,
      shutdownTimeout: '5s'
    },
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } } }]
  })
  const served = spawnServe(file)
  t.teardown(() => served.kill())
  const proxy = `http://127.0.0.1:${proxyPort}`
  const admin = `http://127.0.0.1:${adminPort}`
  await served.waitForLine('the group to listen', (line) => line.msg === 'scopegate listening' && line.worker === 'primary', START_MS)

  const feed = await openEvents(admin)
  t.teardown(() => feed.close())
  t.equal(feed.status, 200, 'the live feed opens on one of the workers')

  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'dave', client_id: 'cli', scope: 'write:todos' })
  for (let i = 0; i < DENIALS; i++) {
    // A new connection each time (send uses no agent): the primary hands connections out round-robin.
    const res = await send(proxy, `/todos/${i}`, { headers: bearer(token) })
    t.equal(res.status, 403, `request ${i} denied`)
  }
  t.equal(echo.received.length, 0, 'the upstream saw nothing')

  const denials = (): DenialEntry[] => feed.events.filter((e) => e.event === 'denial').map((e) => JSON.parse(e.data) as DenialEntry)
  await waitFor('every denial on the feed', () => denials().length >= DENIALS ? true : undefined, 15_000)
  t.equal(denials().length, DENIALS, 'each denial arrives once')
  t.same([...new Set(denials().map((d) => d.worker))].sort(), [1, 2], 'from both workers')
  t.same(denials().map((d) => d.path).sort(), Array.from({ length: DENIALS }, (_, i) => `/todos/${i}`).sort())

  for (let i = 0; i < 3; i++) {
    const page = await send(admin, '/status')
    t.equal(page.status, 200)
    t.match(page.body, /2 workers: #1 \(pid \d+\), #2 \(pid \d+\)/, `page ${i}: both workers named`)
    t.match(page.body, new RegExp(`<tr data-reason="scope_insufficient"><td class="m">scope_insufficient</td><td class="n">${DENIALS}</td><td class="n">${DENIALS}</td>`), `page ${i}: every denial counted once`)
    t.equal(page.body.match(/<td class="m">\/todos\/\d+<\/td>/g)?.length, DENIALS, `page ${i}: every denial listed once`)
  }
})
