/**
 * `requests_total` and `request_duration_seconds` are kept by scopegate (DecisionCounts in
 * src/observability/metrics.ts) and only handed to prom-client when scraped. What a scrape shows must be exactly what
 * prom-client's own Counter and Histogram would have shown for the same decisions, in one process and
 * summed across workers.
 */
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client'
import t from 'tap'
import { DURATION_BUCKETS, GatewayMetrics, METRIC_PREFIX } from '../../src/observability/metrics.js'
import type { DecisionRecord } from '../../src/http/decision-log.js'

type Observation = [route: string | null, decision: DecisionRecord['decision'], reason: string, latencyMs: number]

// Bucket bounds exactly (a value equal to a bound is in that bucket), between them, and past the last.
const observations: Observation[] = [
  ['todos', 'allow', 'allowed', 0.2],
  ['todos', 'allow', 'allowed', 0.5],
  ['todos', 'allow', 'allowed', 1],
  ['todos', 'allow', 'upstream_refused', 3.7],
  ['todos', 'deny', 'scope_missing', 2.5],
  ['todos', 'deny', 'token_expired', 250],
  ['admin', 'audit_deny', 'client_denied', 10_000],
  [null, 'deny', 'no_route', 45_000],
  ['admin', 'deny', 'token_missing', 0]
]

function record ([route, decision, reason, latencyMs]: Observation): DecisionRecord {
  return {
    route,
    method: 'GET',
    path: '/',
    decision,
    reason,
    upstream: route === null ? null : 'api',
    status: 200,
    upstreamStatus: null,
    sub: null,
    clientId: null,
    scopes: '',
    latencyMs
  }
}

/** The same decisions counted the way prom-client counts them. */
function reference (seen: Observation[]): Registry {
  const registry = new Registry()
  const requests = new Counter({
    name: `${METRIC_PREFIX}requests_total`,
    help: 'Decisions made, by route id ("" when no route matched), decision (allow, deny, audit_deny) and reason code.',
    labelNames: ['route', 'decision', 'reason'] as const,
    registers: [registry]
  })
  const duration = new Histogram({
    name: `${METRIC_PREFIX}request_duration_seconds`,
    help: 'Time from the start of the decision to the end of the response, upstream time included, in seconds.',
    labelNames: ['route', 'decision'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry]
  })
  for (const [route, decision, reason, latencyMs] of seen) {
    requests.inc({ route: route ?? '', decision, reason })
    duration.observe({ route: route ?? '', decision }, latencyMs / 1000)
  }
  return registry
}

const lines = (text: string, names: string[]): string[] =>
  text.split('\n').filter((line) => names.some((name) => line.includes(`${METRIC_PREFIX}${name}`))).sort()

const NAMES = ['requests_total', 'request_duration_seconds']

t.test('a scrape shows what prom-client would have counted', async (t) => {
  const metrics = new GatewayMetrics(() => null)
  for (const o of observations) metrics.onDecision(record(o))
  t.same(lines((await metrics.render()).body, NAMES), lines(await reference(observations).metrics(), NAMES))
})

t.test('no decision yet: the metrics are there, with no series', async (t) => {
  const body = (await new GatewayMetrics(() => null).render()).body
  t.match(body, `# TYPE ${METRIC_PREFIX}requests_total counter`)
  t.match(body, `# TYPE ${METRIC_PREFIX}request_duration_seconds histogram`)
  t.notMatch(body, `${METRIC_PREFIX}requests_total{`)
  t.notMatch(body, `${METRIC_PREFIX}request_duration_seconds_bucket{`)
})

t.test('summed across workers as prom-client sums its own', async (t) => {
  const [first, second] = [observations.slice(0, 5), observations.slice(3)]
  const workers = [new GatewayMetrics(() => null), new GatewayMetrics(() => null)]
  first.forEach((o) => { workers[0]?.onDecision(record(o)) })
  second.forEach((o) => { workers[1]?.onDecision(record(o)) })
  const ours = AggregatorRegistry.aggregate(await Promise.all(workers.map(async (w) => await w.registry.getMetricsAsJSON())))
  const theirs = AggregatorRegistry.aggregate(await Promise.all([first, second].map(async (seen) => await reference(seen).getMetricsAsJSON())))
  t.same(lines(await ours.metrics(), NAMES), lines(await theirs.metrics(), NAMES))
  t.match(await ours.metrics(), `${METRIC_PREFIX}requests_total{route="todos",decision="allow",reason="upstream_refused"} 2`)
})

t.test('resetMetrics forgets the decisions counted, as it does for prom-client\'s own metrics', async (t) => {
  const metrics = new GatewayMetrics(() => null)
  for (const o of observations) metrics.onDecision(record(o))
  metrics.registry.resetMetrics()
  const body = (await metrics.render()).body
  t.notMatch(body, `${METRIC_PREFIX}requests_total{`)
  t.notMatch(body, `${METRIC_PREFIX}request_duration_seconds_bucket{`)
  metrics.onDecision(record(observations[0] as Observation))
  t.match((await metrics.render()).body, `${METRIC_PREFIX}requests_total{route="todos",decision="allow",reason="allowed"} 1`)
})
