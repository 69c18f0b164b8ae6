/**
 * `server.workers: 2` under node:cluster, as `scopegate serve` runs it: both workers serve, the admin
 * endpoints report for the whole group (metrics summed over the workers, readiness per worker), SIGHUP
 * reaches every worker and is counted once, a worker that dies is replaced, and SIGTERM stops them all
 * with exit code 0, also when one has to be killed for not draining in time.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { issuerAndEcho } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { freePort, metric, parseMetrics, spawnServe, waitFor, writeConfig, type LogLine } from './support.js'

const AUD = 'https://todo.api'
const START_MS = 60_000 // a loaded CI machine takes a while to boot three node processes
// Three node processes, a worker replaced, a drain: past tap's 120 s on a loaded machine.
t.setTimeout(240_000)

t.test('two workers under node:cluster', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-cluster-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'scopegate.yaml')
  const [proxyPort, adminPort] = [await freePort(), await freePort()]
  const config = {
    server: { proxy: { host: '127.0.0.1', port: proxyPort }, admin: { host: '127.0.0.1', port: adminPort }, workers: 2, shutdownTimeout: '5s' },
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' }]
  }
  await writeConfig(file, config)
  const served = spawnServe(file)
  t.teardown(() => served.kill())
  const proxy = `http://127.0.0.1:${proxyPort}`
  const admin = `http://127.0.0.1:${adminPort}`
  await served.waitForLine('the group to listen', (line) => line.msg === 'scopegate listening' && line.worker === 'primary', START_MS)
  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice' })
  const workerPids = (): Set<number> => new Set(served.lines.filter((l) => l.msg === 'worker listening').map((l) => l.pid as number))
  t.equal(workerPids().size, 2, 'two workers listen')

  const REQUESTS = 40
  const scrape = async (): Promise<ReturnType<typeof parseMetrics>> => {
    const res = await send(admin, '/metrics')
    t.equal(res.status, 200)
    return parseMetrics(res.body)
  }

  t.test('both workers serve, and /metrics adds them up', async (t) => {
    for (let i = 0; i < REQUESTS; i++) {
      // A new connection each time (send uses no agent): the primary hands connections out round-robin.
      const res = await send(proxy, `/todos/${i}`, { headers: bearer(token) })
      t.equal(res.status, 200, `request ${i}`)
    }
    const decisions = await waitFor('every decision line', () => {
      const lines = served.lines.filter((l) => l.msg === 'decision')
      return lines.length === REQUESTS ? lines : undefined
    })
    const byWorker = new Map<unknown, number>()
    for (const line of decisions) byWorker.set(line.worker, (byWorker.get(line.worker) ?? 0) + 1)
    t.same([...byWorker.keys()].sort(), [1, 2], `both workers served (${JSON.stringify([...byWorker])})`)

    // Whichever worker answers the scrape, the numbers are the group's.
    for (let i = 0; i < 4; i++) {
      const samples = await scrape()
      t.equal(metric(samples, 'scopegate_requests_total', { route: 'todos', decision: 'allow', reason: 'allowed' }), REQUESTS, `scrape ${i}: every request counted once`)
      t.equal(metric(samples, 'scopegate_jwks_fetches_total', { issuer: 'test', result: 'ok' }), 2, 'one key load per worker')
      t.equal(metric(samples, 'scopegate_jwks_keys', { issuer: 'test' }), 1, 'a gauge of the keys held, not a sum')
      t.equal(metric(samples, 'scopegate_token_cache_misses_total'), 2, 'one miss per worker')
      t.equal(metric(samples, 'scopegate_token_cache_hits_total'), REQUESTS - 2)
      t.ok(samples.some((s) => s.name === 'process_resident_memory_bytes'), 'process metrics, summed')
      t.equal(metric(samples, 'scopegate_workers'), 2, 'both workers answered')
      t.equal(metric(samples, 'scopegate_ready'), 1, 'the smallest of the workers\' readiness')
      t.equal(metric(samples, 'scopegate_jwks_state', { issuer: 'test', state: 'ready' }), 1, 'a state, not a sum')
      t.equal(metric(samples, 'scopegate_config_last_reload_successful'), 1, 'the smallest, not a sum')
    }
  })

  t.test('/readyz reports every worker', async (t) => {
    const res = await send(admin, '/readyz')
    t.equal(res.status, 200)
    t.match(res.json, { status: 'ready', workers: { configured: 2, serving: 2 } })
    t.same((res.json.processes as Array<{ pid: number }>).map((p) => p.pid).sort(), [...workerPids()].sort())
    t.ok((res.json.processes as Array<{ status: string }>).every((p) => p.status === 'ready'))
  })

  t.test('SIGHUP reaches every worker and is counted once', async (t) => {
    const mark = served.lines.length
    served.signal('SIGHUP')
    const reloaded = (line: LogLine): boolean => line.msg === 'config reloaded'
    await waitFor('three reload lines', () => served.lines.slice(mark).filter(reloaded).length === 3 ? true : undefined, 15_000)
    t.same(served.lines.slice(mark).filter(reloaded).map((l) => l.worker).sort(), [1, 2, 'primary'].sort())
    t.equal(metric(await scrape(), 'scopegate_config_reloads_total', { result: 'ok' }), 1)
    t.equal(jwks.fetches, 1, 'one fetch for the group at start (through the primary), none for the unchanged keys since')
  })

  t.test('a refused reload shows in the group\'s scopegate_config_last_reload_successful until a good one', async (t) => {
    let mark = served.lines.length
    await writeConfig(file, { ...config, routes: [{ id: 'todos', match: { path: 'no-slash' }, upstream: 'todo' }] })
    await served.waitForLine('the refused reload', (l) => l.worker === 'primary' && l.msg === 'config reload failed; the previous config stays in force', 15_000, mark)
    let samples = await scrape()
    t.equal(metric(samples, 'scopegate_config_last_reload_successful'), 0, 'the primary\'s 0, not the workers\' 1')
    t.equal(metric(samples, 'scopegate_config_reloads_total', { result: 'error' }), 1)
    t.equal((await send(proxy, '/todos/still', { headers: bearer(token) })).status, 200, 'the previous config serves')

    mark = served.lines.length
    await writeConfig(file, config)
    await served.waitForLine('the good reload', (l) => l.worker === 'primary' && l.msg === 'config reloaded', 15_000, mark)
    samples = await scrape()
    t.equal(metric(samples, 'scopegate_config_last_reload_successful'), 1)
  })

  t.test('a worker that dies is replaced', async (t) => {
    const [victim] = [...workerPids()]
    const mark = served.lines.length
    process.kill(victim as number, 'SIGKILL')
    const exited = await served.waitForLine('the exit to be noticed', (l) => l.msg === 'worker exited; replacing it', 15_000, mark)
    t.equal(exited.signal, 'SIGKILL')
    t.match(exited, { worker: 'primary', pid: served.child.pid, workerPid: victim }, 'the primary\'s line names the worker apart from itself')
    const raw = served.output().split('\n').find((line) => line.includes('"msg":"worker exited; replacing it"')) ?? ''
    for (const key of ['worker', 'pid', 'workerId', 'workerPid']) {
      t.equal(raw.split(`"${key}":`).length - 1, 1, `"${key}" appears once in the raw line`)
    }
    // Meanwhile the other worker serves every connection.
    t.equal((await send(proxy, '/todos/meanwhile', { headers: bearer(token) })).status, 200)
    await served.waitForLine('the replacement', (l) => l.msg === 'replacement worker listening', START_MS, mark)
    const ready = await waitFor('the group to be ready again', async () => {
      const res = await send(admin, '/readyz')
      return res.status === 200 && res.json.workers.serving === 2 ? res.json : undefined
    }, 15_000)
    t.notOk((ready.processes as Array<{ pid: number }>).some((p) => p.pid === victim), 'the dead worker is gone from the group')
  })

  t.test('SIGTERM stops every worker, killing one that does not drain in time; the primary still exits 0', async (t) => {
    const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }
    const pids = [...workerPids()].filter(alive)
    t.equal(pids.length, 2, 'two live workers')
    // A stopped process cannot handle SIGTERM: the primary must kill it once shutdownTimeout + 5 s are up.
    process.kill(pids[0] as number, 'SIGSTOP')
    const mark = served.lines.length
    served.signal('SIGTERM')
    t.same(await Promise.race([served.exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), 40_000))]), { code: 0, signal: null })
    t.match(served.lines.slice(mark).find((l) => l.msg === 'worker did not exit in time; killing it'), { workerPid: pids[0] })
    t.match(served.lines.slice(mark).find((l) => l.msg === 'scopegate stopped' && l.worker === 'primary'), { code: 0 })
    await waitFor('every worker to be gone', () => pids.every((pid) => !alive(pid)), 5000)
    t.pass('no worker left behind')
  })
})
