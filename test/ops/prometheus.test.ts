/**
 * A real Prometheus scraping a real `scopegate serve`, as one process and as `server.workers: 2`: the
 * target is up, `scopegate_requests_total` moves by exactly the requests sent (allowed and denied, summed
 * by decision), `promtool check metrics` accepts the exposition, the alerting rules load and evaluate,
 * and every expression of the Grafana dashboard and of the rules parses and runs; those whose series
 * exist after the traffic return data (docs/observability.md).
 */
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { closedPort } from '../helpers/echo-upstream.js'
import { issuerAndEcho } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { ALERTS_FILE, alertExpressions, alertGroups, dashboardExpressions, selectorsOf, substituteVariables, type Expression } from '../helpers/observability-files.js'
import { PROMTOOL, startPrometheus, type TestPrometheus } from '../helpers/prometheus-server.js'
import { freePort, spawnServe, todosAndGone, waitFor, writeConfig } from './support.js'

// Two scopegate groups and two Prometheus servers, one after the other: past tap's 120 s on a loaded machine.
t.setTimeout(300_000)

const AUD = 'https://todo.api'
const START_MS = 60_000 // a loaded machine takes a while to boot three node processes
const PROMETHEUS_MS = 60_000 // bound on each wait for Prometheus to scrape or evaluate (a loaded machine)

/** The requests sent, by what the client gets and what scopegate decides. */
const TRAFFIC = {
  allowed: 12, // 200 from the upstream
  upstreamDown: 2, // allowed, the upstream refuses: 502
  noToken: 5, // 401
  wrongScope: 3, // 403
  noRoute: 2 // 404
}
const ALLOWED = TRAFFIC.allowed + TRAFFIC.upstreamDown
const DENIED = TRAFFIC.noToken + TRAFFIC.wrongScope + TRAFFIC.noRoute

/** `sum by (decision)` of an instant query, as a plain object. */
async function byDecision (prometheus: TestPrometheus): Promise<Record<string, number>> {
  const answer = await prometheus.query('sum by (decision) (scopegate_requests_total{job="scopegate"})')
  if (answer.status !== 'success') throw new Error(`query failed: ${String(answer.error)}`)
  return Object.fromEntries(answer.data.result.map((s) => [s.metric.decision ?? '', Number(s.value[1])]))
}

/** The newest scrape's time, in seconds, seen through a series every scrape of scopegate writes. */
async function lastScrape (prometheus: TestPrometheus): Promise<number> {
  const answer = await prometheus.query('max(timestamp(scopegate_workers{job="scopegate"}))')
  return Number(answer.data?.result[0]?.value[1] ?? 0)
}

/** Waits until Prometheus holds a scrape taken after every sample it holds now. */
async function nextScrape (prometheus: TestPrometheus): Promise<void> {
  const before = await lastScrape(prometheus)
  await waitFor('a newer scrape', async () => (await lastScrape(prometheus)) > before, PROMETHEUS_MS)
}

/** Runs `promtool check metrics` on a scrape of /metrics: no complaint, exit code 0. */
function checkMetrics (t: Test, body: string): void {
  const result = spawnSync(PROMTOOL, ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 30_000 })
  t.equal(result.status, 0, 'promtool check metrics exits 0')
  t.equal(`${result.stdout}${result.stderr}`.trim(), '', 'and complains about nothing')
}

/**
 * Each expression parses and runs; with every one of its selectors matching series, it returns data.
 * Resolves with where the expressions are whose series this traffic does not create.
 */
async function runExpressions (t: Test, prometheus: TestPrometheus, expressions: Expression[], requireData: boolean): Promise<string[]> {
  const withoutSeries: string[] = []
  for (const { where, expr } of expressions) {
    const query = substituteVariables(expr)
    t.notMatch(query, /\$/, `${where}: every variable substituted`)
    const answer = await prometheus.query(query)
    t.equal(answer.status, 'success', `${where}: runs${answer.error === undefined ? '' : ` (${answer.error})`}`)
    if (!requireData) continue
    const selectors = selectorsOf(query)
    t.ok(selectors.length > 0, `${where}: reads scopegate's series`)
    let present = true
    for (const selector of selectors) present &&= (await prometheus.query(`count(${selector})`)).data?.result.length > 0
    if (present) t.ok(answer.data.result.length > 0, `${where}: returns data, its series existing`)
    else withoutSeries.push(where)
  }
  return withoutSeries
}

/** The dashboard's queries of series that exist only with a feature the scenario does not use. */
const FEATURE_PANELS = ['panel "Introspection calls" A', 'panel "Rate limited" A', 'panel "Rate limited" B', 'panel "Redis connected" A']

async function scenario (t: Test, workers: number): Promise<void> {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const down = await closedPort()
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-prometheus-e2e-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'scopegate.yaml')
  const [proxyPort, adminPort] = [await freePort(), await freePort()]
  await writeConfig(file, {
    server: { proxy: { host: '127.0.0.1', port: proxyPort }, admin: { host: '127.0.0.1', port: adminPort }, workers, shutdownTimeout: '2s' },
    ...todosAndGone(jwks, AUD, echo.url, down)
  })
  const served = spawnServe(file)
  t.teardown(() => served.kill())
  await served.waitForLine('scopegate to listen', (line) => line.msg === 'scopegate listening' && (workers === 1 || line.worker === 'primary'), START_MS)
  const proxy = `http://127.0.0.1:${proxyPort}`
  const admin = `http://127.0.0.1:${adminPort}`

  const prometheus = await startPrometheus({ targets: [`127.0.0.1:${adminPort}`], ruleFiles: [ALERTS_FILE] })
  t.teardown(() => prometheus.stop())

  const target = await waitFor('the target to be up', async () => (await prometheus.targets()).find((t) => t.health === 'up'), PROMETHEUS_MS)
  t.equal(target.labels.job, 'scopegate')
  t.equal(target.scrapeUrl, `${admin}/metrics`)
  // Every worker answers the group's scrape once it listens; until then a scrape may hold fewer.
  await waitFor(`${workers} worker(s) in a scrape`, async () =>
    Number((await prometheus.query('sum(scopegate_workers{job="scopegate"})')).data?.result[0]?.value[1]) === workers, PROMETHEUS_MS)
  const before = await byDecision(prometheus)

  const reader = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', scope: 'read:todos' })
  const writer = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'bob', scope: 'write:todos' })
  const sendAll = async (count: number, path: string, headers: Record<string, string>, status: number): Promise<void> => {
    for (let i = 0; i < count; i++) t.equal((await send(proxy, `${path}${i}`, { headers })).status, status, `${path}${i} answers ${status}`)
  }
  await sendAll(TRAFFIC.allowed, '/todos/', bearer(reader), 200)
  await sendAll(TRAFFIC.upstreamDown, '/gone?', bearer(reader), 502)
  await sendAll(TRAFFIC.noToken, '/todos/', {}, 401)
  await sendAll(TRAFFIC.wrongScope, '/todos/', bearer(writer), 403)
  await sendAll(TRAFFIC.noRoute, '/nowhere/', bearer(reader), 404)
  t.equal(echo.received.length, TRAFFIC.allowed, 'the upstream saw the allowed requests and nothing else')
  t.ok(echo.received.every((r) => r.url.startsWith('/todos/')), 'only /todos')

  const expected = { allow: (before.allow ?? 0) + ALLOWED, deny: (before.deny ?? 0) + DENIED }
  await waitFor('Prometheus to see every decision', async () => {
    const now = await byDecision(prometheus)
    return now.allow === expected.allow && now.deny === expected.deny
  }, PROMETHEUS_MS).catch(async (err: Error) => { throw new Error(`${err.message}: ${JSON.stringify(await byDecision(prometheus))}`) })
  await nextScrape(prometheus)
  t.same(await byDecision(prometheus), expected, `moved by exactly ${ALLOWED} allowed and ${DENIED} denied, also a scrape later`)
  const upstreamErrors = await prometheus.query('sum(scopegate_upstream_errors_total{job="scopegate", upstream="down", kind="refused"})')
  t.equal(Number(upstreamErrors.data.result[0]?.value[1]), TRAFFIC.upstreamDown, 'the refused upstream requests')
  const ready = await prometheus.query('min(scopegate_ready{job="scopegate"})')
  t.equal(Number(ready.data.result[0]?.value[1]), 1, 'scopegate_ready')

  t.test('promtool check metrics accepts the exposition', async (t) => {
    const res = await send(admin, '/metrics')
    t.equal(res.status, 200)
    checkMetrics(t, res.body)
  })

  t.test('the alerting rules load and evaluate without error', async (t) => {
    const rules = await waitFor('every rule evaluated', async () => {
      const groups = await prometheus.rules()
      const all = groups.flatMap((g) => g.rules)
      return all.length > 0 && all.every((r) => r.health !== 'unknown') ? all : undefined
    }, PROMETHEUS_MS)
    t.same(rules.map((r) => r.name).sort(), alertGroups().flatMap((g) => g.rules.map((r) => r.alert)).sort(), 'every alert of the file')
    for (const rule of rules) t.equal(rule.health, 'ok', `${rule.name}${rule.lastError === undefined || rule.lastError === '' ? '' : `: ${rule.lastError}`}`)
  })

  t.test('every dashboard expression runs, and returns data where its series exist', async (t) => {
    const withoutSeries = await runExpressions(t, prometheus, dashboardExpressions(), true)
    t.same(withoutSeries.sort(), [...FEATURE_PANELS].sort(), 'every other query read series that exist')
  })

  t.test('every alert expression runs', async (t) => {
    await runExpressions(t, prometheus, alertExpressions(), false)
  })
}

t.test('one process', async (t) => { await scenario(t, 1) })
t.test('server.workers: 2', async (t) => { await scenario(t, 2) })
