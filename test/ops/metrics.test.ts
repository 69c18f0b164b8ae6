/**
 * `/metrics` on the admin listener: after a known mix of allowed and denied requests, every documented
 * metric (docs/operations.md#metrics) has exactly the expected value, and Node's default process metrics are there too.
 */
import t from 'tap'
import { closedPort, startEcho } from '../helpers/echo-upstream.js'
import { compileTestConfig, issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { makeKey, mintToken } from '../helpers/jwks-server.js'
import { metric, metricSum, parseMetrics, todosAndGone, type Sample } from './support.js'

const AUD = 'https://todo.api'

t.test('metrics after a known mix of allowed and denied requests', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const down = await closedPort()

  const config = todosAndGone(jwks, AUD, echo.url, down)
  config.routes.push({ id: 'health', match: { path: '/health' }, upstream: 'todo', auth: 'none' })
  const gw = await startGateway(config)
  t.teardown(() => gw.close())

  const reader = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', client_id: 'web', scope: 'read:todos' })
  const writer = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'bob', client_id: 'web', scope: 'write:todos' })

  const expect = async (path: string, headers: Record<string, string>, status: number): Promise<void> => {
    const res = await send(gw.proxyUrl, path, { headers })
    t.equal(res.status, status, `${path} answers ${status}`)
  }
  // 3 allowed with one token (1 cache miss, 2 hits), 1 allowed without a token (auth: none)
  await expect('/todos', bearer(reader), 200)
  await expect('/todos/1', bearer(reader), 200)
  await expect('/todos/2', bearer(reader), 200)
  await expect('/health', {}, 200)
  // 2 denied without a token, 1 for its scopes (a second token: 1 miss), 1 with no route
  await expect('/todos', {}, 401)
  await expect('/todos/3', {}, 401)
  await expect('/todos', bearer(writer), 403)
  await expect('/nowhere', bearer(reader), 404)
  // 1 allowed that the upstream refuses (a 4th use of the first token: a hit)
  await expect('/gone', bearer(reader), 502)

  const scrape = async (): Promise<Sample[]> => {
    const res = await send(gw.adminUrl, '/metrics')
    t.equal(res.status, 200)
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
    return parseMetrics(res.body)
  }
  const samples = await scrape()
  const requests = (route: string, decision: string, reason: string): number | undefined =>
    metric(samples, 'scopegate_requests_total', { route, decision, reason })

  t.equal(requests('todos', 'allow', 'allowed'), 3)
  t.equal(requests('health', 'allow', 'allowed'), 1)
  t.equal(requests('todos', 'deny', 'token_missing'), 2)
  t.equal(requests('todos', 'deny', 'scope_insufficient'), 1)
  t.equal(requests('', 'deny', 'no_route'), 1)
  t.equal(requests('gone', 'allow', 'upstream_refused'), 1)
  t.equal(metricSum(samples, 'scopegate_requests_total'), 9, 'nothing else was counted')

  t.equal(metricSum(samples, 'scopegate_request_duration_seconds_count'), 9)
  t.equal(metric(samples, 'scopegate_request_duration_seconds_count', { route: 'todos', decision: 'allow' }), 3)
  t.equal(metric(samples, 'scopegate_request_duration_seconds_bucket', { route: 'todos', decision: 'allow', le: '+Inf' }), 3)
  t.ok((metric(samples, 'scopegate_request_duration_seconds_sum', { route: 'todos', decision: 'allow' }) ?? 0) > 0)

  t.equal(metric(samples, 'scopegate_jwks_fetches_total', { issuer: 'test', result: 'ok' }), 1, 'keys fetched once, at start')
  t.equal(metric(samples, 'scopegate_jwks_fetches_total', { issuer: 'test', result: 'error' }), undefined)
  t.equal(metric(samples, 'scopegate_jwks_keys', { issuer: 'test' }), 1)
  t.equal(metric(samples, 'scopegate_jwks_stale_seconds', { issuer: 'test' }), 0)
  t.equal(metric(samples, 'scopegate_token_cache_hits_total'), 3)
  t.equal(metric(samples, 'scopegate_token_cache_misses_total'), 2)
  t.equal(metric(samples, 'scopegate_config_reloads_total', { result: 'ok' }), 0)
  t.equal(metric(samples, 'scopegate_config_reloads_total', { result: 'error' }), 0)
  t.equal(metric(samples, 'scopegate_upstream_errors_total', { upstream: 'down', kind: 'refused' }), 1)
  t.equal(metricSum(samples, 'scopegate_upstream_errors_total'), 1)
  t.equal(metric(samples, 'scopegate_config_last_reload_successful'), 1)
  t.equal(metric(samples, 'scopegate_ready'), 1)
  t.equal(metric(samples, 'scopegate_workers'), 1, 'one process')
  t.same(samples.filter((s) => s.name === 'scopegate_jwks_state').map((s) => [s.labels.issuer, s.labels.state, s.value]),
    [['test', 'starting', 0], ['test', 'ready', 1], ['test', 'stale', 0], ['test', 'unavailable', 0]], 'one key state per issuer, ready')
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    t.notOk(samples.some((s) => s.name === name), `no gauge named like a counter: ${name}`)
  }
  t.ok(samples.some((s) => s.name === 'nodejs_active_handles'), 'the handles by type stay')

  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    t.ok(samples.some((s) => s.name === name), `default process metric ${name}`)
  }

  t.test('a reload starts a new token cache; its counters carry on from the old one', async (t) => {
    gw.gateway.reload(compileTestConfig(config))
    await gw.gateway.reissue.settled()
    await expect('/todos', bearer(reader), 200) // a miss: the new engine's cache is empty
    await expect('/todos', bearer(reader), 200) // a hit
    const after = await scrape()
    t.equal(metric(after, 'scopegate_token_cache_hits_total'), 4)
    t.equal(metric(after, 'scopegate_token_cache_misses_total'), 3)
    t.equal(metric(after, 'scopegate_jwks_fetches_total', { issuer: 'test', result: 'ok' }), 1, 'the reload fetched no keys')
    t.equal(jwks.fetches, 1)
  })

  t.test('two reloads between scrapes: the counts of the cache in between are kept too', async (t) => {
    for (let reload = 0; reload < 2; reload++) {
      t.ok(await gw.gateway.reload(compileTestConfig(config)), 'reloaded')
      await expect('/todos', bearer(reader), 200) // a miss: each new engine's cache starts empty
      await expect('/todos', bearer(reader), 200) // a hit
    }
    const after = await scrape()
    t.equal(metric(after, 'scopegate_token_cache_hits_total'), 6)
    t.equal(metric(after, 'scopegate_token_cache_misses_total'), 5)
    t.equal(echo.received.filter((r) => r.url === '/todos').length, 7, 'the upstream saw every allowed /todos request')
  })
})

t.test('each gateway has its own registry: two in one process count apart', async (t) => {
  const echo = await startEcho()
  t.teardown(() => echo.close())
  const config = { upstreams: { todo: { url: echo.url } }, routes: [{ id: 'open', match: { path: '/open' }, upstream: 'todo', auth: 'none' }] }
  const a = await startGateway(config)
  t.teardown(() => a.close())
  const b = await startGateway(config)
  t.teardown(() => b.close())
  await send(a.proxyUrl, '/open')
  await send(a.proxyUrl, '/open')
  await send(b.proxyUrl, '/open')
  const countOf = async (adminUrl: string): Promise<number | undefined> =>
    metric(parseMetrics((await send(adminUrl, '/metrics')).body), 'scopegate_requests_total', { route: 'open', decision: 'allow', reason: 'allowed' })
  t.equal(await countOf(a.adminUrl), 2)
  t.equal(await countOf(b.adminUrl), 1)
})

t.test('a failing JWKS is counted, and so is the age of the stale keys', async (t) => {
  const { jwks, echo } = await issuerAndEcho(t)
  let now = Date.now()
  const gw = await startGateway({
    issuers: [{ id: 'flaky', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD], jwks: { refreshInterval: '1m', cooldown: '1s' } }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos' }, upstream: 'todo' }]
  }, { now: () => now })
  t.teardown(() => gw.close())
  const unknownKid = await mintToken(await makeKey('ES256'), { iss: jwks.issuer, aud: AUD, sub: 'x' })

  jwks.setMode('down')
  now += 5_000
  // An unknown kid makes the store refetch (past its cooldown); the issuer answers 503.
  const res = await send(gw.proxyUrl, '/todos', { headers: bearer(unknownKid) })
  t.equal(res.status, 401)
  now += 60_000
  const samples = parseMetrics((await send(gw.adminUrl, '/metrics')).body)
  t.equal(metric(samples, 'scopegate_jwks_fetches_total', { issuer: 'flaky', result: 'ok' }), 1)
  t.equal(metric(samples, 'scopegate_jwks_fetches_total', { issuer: 'flaky', result: 'error' }), 1)
  t.equal(metric(samples, 'scopegate_jwks_keys', { issuer: 'flaky' }), 1, 'the last good key stays in use')
  t.equal(metric(samples, 'scopegate_jwks_stale_seconds', { issuer: 'flaky' }), 60, 'failing for 60 s')
  t.equal(metric(samples, 'scopegate_jwks_state', { issuer: 'flaky', state: 'stale' }), 1, 'stale')
  t.equal(metric(samples, 'scopegate_jwks_state', { issuer: 'flaky', state: 'ready' }), 0)
  t.equal(metric(samples, 'scopegate_ready'), 1, 'stale keys are usable: still ready')

  // Past jwks.maxStale (24 h by default) the keys are no longer usable: 503s, and not ready.
  now += 25 * 3600_000
  const later = parseMetrics((await send(gw.adminUrl, '/metrics')).body)
  t.equal(metric(later, 'scopegate_jwks_state', { issuer: 'flaky', state: 'unavailable' }), 1, 'unavailable')
  t.equal(metric(later, 'scopegate_jwks_state', { issuer: 'flaky', state: 'stale' }), 0)
  t.equal(metric(later, 'scopegate_ready'), 0, 'not ready')
  t.equal((await send(gw.adminUrl, '/readyz')).status, 503, 'as /readyz says')
})

t.test('scopegate_ready turns 0 as soon as shutdown begins', async (t) => {
  const echo = await startEcho()
  t.teardown(() => echo.close())
  const gw = await startGateway({ upstreams: { todo: { url: echo.url } }, routes: [{ id: 'open', match: { path: '/open' }, upstream: 'todo', auth: 'none' }] })
  t.teardown(() => gw.close())
  const ready = async (): Promise<number | undefined> => metric(parseMetrics(await gw.gateway.metrics.render().then((r) => r.body)), 'scopegate_ready')
  t.equal(await ready(), 1)
  const closing = gw.gateway.close()
  t.equal(await ready(), 0, 'while draining')
  await closing
})
