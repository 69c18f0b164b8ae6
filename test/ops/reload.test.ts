/**
 * Hot reload (docs/operations.md#hot-reload): a valid config is swapped in atomically and requests under way finish under
 * the old one; an invalid config is logged with every problem, counted, and the old one stays; keys of
 * issuers whose source did not change are not fetched again. In process (Gateway + ConfigReloader +
 * the file watcher, wired as `serve` wires them) and as `scopegate serve` with SIGHUP and file changes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigReloader } from '../../src/config/reload.js'
import { watchConfigFile } from '../../src/config/watch.js'
import { startEcho } from '../helpers/echo-upstream.js'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { makeKey, mintToken, startJwksServer } from '../helpers/jwks-server.js'
import { freePort, metric, parseMetrics, sleep, spawnServe, waitFor, writeConfig } from './support.js'

const AUD = 'https://todo.api'

t.test('reload in process', async (t) => {
  const [keyA, keyB] = [await makeKey('ES256'), await makeKey('ES256')]
  const [jwksA, jwksB, jwksC] = [await startJwksServer([keyA]), await startJwksServer([keyB]), await startJwksServer([keyB])]
  t.teardown(() => Promise.all([jwksA.close(), jwksB.close(), jwksC.close()]))
  const echo = await startEcho()
  t.teardown(() => echo.close())
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-reload-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'scopegate.yaml')

  const issuers = [
    { id: 'a', issuer: jwksA.issuer, jwksUri: jwksA.url, algorithms: ['ES256'], audiences: [AUD] },
    { id: 'b', issuer: jwksB.issuer, jwksUri: jwksB.url, algorithms: ['ES256'], audiences: [AUD] }
  ]
  const todos = { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' }
  const reports = { id: 'reports', match: { path: '/reports', prefix: true }, upstream: 'todo' }
  const base = { issuers, upstreams: { todo: { url: echo.url } }, routes: [todos] }
  await writeConfig(file, base)
  const gw = await startGateway(base)
  t.teardown(() => gw.close())
  const reloader = new ConfigReloader({
    file,
    logger: gw.gateway.logger,
    current: () => gw.gateway.current().config,
    apply: async (config) => await gw.gateway.reload(config),
    count: (result) => { gw.gateway.metrics.reloaded(result) }
  })
  const reloads = async (): Promise<{ ok?: number, error?: number }> => {
    const samples = parseMetrics((await send(gw.adminUrl, '/metrics')).body)
    return { ok: metric(samples, 'scopegate_config_reloads_total', { result: 'ok' }), error: metric(samples, 'scopegate_config_reloads_total', { result: 'error' }) }
  }
  const tokenA = await mintToken(keyA, { iss: jwksA.issuer, aud: AUD, sub: 'alice' })
  const tokenB = await mintToken(keyB, { iss: jwksB.issuer, aud: AUD, sub: 'bob' })
  t.same([jwksA.fetches, jwksB.fetches], [1, 1], 'each issuer fetched once at start')

  t.test('a valid config is swapped in; unchanged keys are not fetched again', async (t) => {
    t.equal((await send(gw.proxyUrl, '/reports', { headers: bearer(tokenA) })).status, 404)
    await writeConfig(file, { ...base, routes: [todos, reports] })
    t.equal(await reloader.reload('test'), true)
    t.equal((await send(gw.proxyUrl, '/reports', { headers: bearer(tokenA) })).status, 200)
    t.equal((await send(gw.proxyUrl, '/todos', { headers: bearer(tokenB) })).status, 200)
    t.same([jwksA.fetches, jwksB.fetches], [1, 1], 'no issuer was fetched again')
    t.same(await reloads(), { ok: 1, error: 0 })
    t.match(gw.logs.filter((l) => l.msg !== 'decision').at(-1), { msg: 'config reloaded', trigger: 'test' })
  })

  t.test('only the issuer whose key source changed is fetched', async (t) => {
    const moved = [issuers[0], { ...issuers[1], jwksUri: jwksC.url }]
    await writeConfig(file, { ...base, issuers: moved, routes: [todos, reports] })
    t.equal(await reloader.reload('test'), true)
    await waitFor('the new key store to fetch', () => jwksC.fetches === 1)
    t.equal((await send(gw.proxyUrl, '/todos', { headers: bearer(tokenB) })).status, 200, 'issuer b now verified with keys from its new source')
    t.same([jwksA.fetches, jwksB.fetches, jwksC.fetches], [1, 1, 1])
  })

  t.test('requests under way finish under the config they started with', async (t) => {
    echo.setMode({ delayMs: 800 })
    t.teardown(() => echo.setMode('echo'))
    const inFlight = send(gw.proxyUrl, '/reports/slow', { headers: bearer(tokenA) })
    await waitFor('the upstream to receive the request', () => echo.received.some((r) => r.url === '/reports/slow'))
    await writeConfig(file, { ...base, routes: [todos] })
    t.equal(await reloader.reload('test'), true, 'the route is removed while its request is under way')
    echo.setMode('echo')
    t.equal((await send(gw.proxyUrl, '/reports/new', { headers: bearer(tokenA) })).status, 404, 'a new request sees the new config')
    const res = await inFlight
    t.equal(res.status, 200, 'the request under way completes')
    t.equal(res.json?.headers['x-auth-route'], 'reports')
  })

  t.test('an invalid config is logged with every problem, counted, and the old one stays', async (t) => {
    const before = await reloads()
    await writeConfig(file, {
      ...base,
      issuers: [{ ...issuers[0], algorithms: ['HS256'] }, issuers[1]],
      routes: [todos, { ...reports, match: { path: 'reports' } }]
    })
    t.equal(await reloader.reload('test'), false)
    const failure = gw.logs.filter((l) => l.msg !== 'decision').at(-1)
    t.match(failure, { level: 50, msg: 'config reload failed; the previous config stays in force', trigger: 'test' })
    const problems = (failure?.problems ?? []) as Array<{ path: string, message: string }>
    t.ok(problems.some((p) => p.path.startsWith('issuers[0].algorithms')), 'names the refused algorithm')
    t.ok(problems.some((p) => p.path.startsWith('routes[1].match.path')), 'names the bad path')
    t.equal((await send(gw.proxyUrl, '/todos', { headers: bearer(tokenA) })).status, 200, 'the previous config still serves')
    t.equal((await send(gw.proxyUrl, '/reports', { headers: bearer(tokenA) })).status, 404)
    t.same(await reloads(), { ok: before.ok, error: (before.error ?? 0) + 1 })
  })

  t.test('changed listener settings are applied only after a restart, and say so', async (t) => {
    await writeConfig(file, { ...base, server: { proxy: { port: 18080 } } })
    t.equal(await reloader.reload('test'), true)
    t.match(gw.logs.filter((l) => l.msg !== 'decision').at(-1), { level: 40, settings: ['server.proxy'] })
    t.equal((await send(gw.proxyUrl, '/todos', { headers: bearer(tokenA) })).status, 200, 'the listener did not move')
  })

  t.test('a change of the file triggers one reload, after a quiet period', async (t) => {
    const seen: number[] = []
    const watcher = watchConfigFile(file, () => { seen.push(Date.now()); void reloader.reload('file') }, { debounceMs: 100, pollMs: 200 })
    t.teardown(() => watcher.close())
    const before = await reloads()
    // Two writes in a row, a plain one (truncate + write) then an atomic one: one reload of the last.
    await writeFile(file, JSON.stringify({ ...base, routes: [todos, reports] }))
    await writeConfig(file, { ...base, routes: [todos, reports] })
    await waitFor('the reload', () => gw.logs.some((l) => l.msg === 'config reloaded' && l.trigger === 'file'))
    t.equal((await send(gw.proxyUrl, '/reports', { headers: bearer(tokenA) })).status, 200)
    await writeConfig(file, { ...base, routes: [todos, reports] })
    await sleep(600)
    t.equal(seen.length, 1, 'the same content written again is not a change')
    t.same(await reloads(), { ok: (before.ok ?? 0) + 1, error: before.error })
  })
})

t.test('scopegate serve: SIGHUP and file changes', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-reload-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'scopegate.yaml')
  const [proxyPort, adminPort] = [await freePort(), await freePort()]
  const todos = { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' }
  const reports = { id: 'reports', match: { path: '/reports', prefix: true }, upstream: 'todo' }
  const base = {
    server: { proxy: { host: '127.0.0.1', port: proxyPort }, admin: { host: '127.0.0.1', port: adminPort } },
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { todo: { url: echo.url } },
    routes: [todos]
  }
  await writeConfig(file, base)
  const served = spawnServe(file)
  t.teardown(() => served.kill())
  await served.waitForLine('listening', (line) => line.msg === 'scopegate listening')
  const proxy = `http://127.0.0.1:${proxyPort}`
  const admin = `http://127.0.0.1:${adminPort}`
  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice' })
  const reloads = async (): Promise<{ ok?: number, error?: number }> => {
    const samples = parseMetrics((await send(admin, '/metrics')).body)
    return { ok: metric(samples, 'scopegate_config_reloads_total', { result: 'ok' }), error: metric(samples, 'scopegate_config_reloads_total', { result: 'error' }) }
  }
  const outcome = (trigger: string, from: number): Promise<Record<string, unknown>> =>
    served.waitForLine(`a reload by ${trigger}`, (l) => l.trigger === trigger && typeof l.msg === 'string' && l.msg.startsWith('config reload'), 10_000, from)

  t.equal(jwks.fetches, 1)
  let mark = served.lines.length
  served.signal('SIGHUP')
  t.match(await outcome('SIGHUP', mark), { msg: 'config reloaded' }, 'SIGHUP reloads')
  t.equal(jwks.fetches, 1, 'the unchanged issuer was not fetched again')

  mark = served.lines.length
  await writeConfig(file, { ...base, routes: [todos, reports] })
  t.match(await outcome('file', mark), { msg: 'config reloaded' }, 'a change of the file reloads')
  t.equal((await send(proxy, '/reports', { headers: bearer(token) })).status, 200, 'the new route serves')

  mark = served.lines.length
  await writeConfig(file, { ...base, issuers: [{ ...base.issuers[0], algorithms: ['none'] }], routes: [todos, { ...reports, match: { path: 'no-slash' } }] })
  const failed = await outcome('file', mark)
  t.match(failed, { msg: 'config reload failed; the previous config stays in force', level: 50 })
  t.equal((failed.problems as unknown[]).length, 2, 'every problem is logged')
  t.equal((await send(proxy, '/reports', { headers: bearer(token) })).status, 200, 'the previous config stays in force')

  mark = served.lines.length
  served.signal('SIGHUP')
  t.match(await outcome('SIGHUP', mark), { msg: 'config reload failed; the previous config stays in force' }, 'SIGHUP with the invalid file fails too')
  t.same(await reloads(), { ok: 2, error: 2 })
  t.equal(jwks.fetches, 1, 'no reload fetched keys')
  const lastReload = async (): Promise<number | undefined> =>
    metric(parseMetrics((await send(admin, '/metrics')).body), 'scopegate_config_last_reload_successful')
  t.equal(await lastReload(), 0, 'the last reload was refused')

  mark = served.lines.length
  await writeConfig(file, base)
  t.match(await outcome('file', mark), { msg: 'config reloaded' }, 'a valid file again')
  t.equal(await lastReload(), 1, 'the last reload was swapped in')

  served.signal('SIGTERM')
  t.same(await served.exited, { code: 0, signal: null })
})
