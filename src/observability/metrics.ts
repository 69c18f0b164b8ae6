/**
 * Prometheus metrics (docs/observability.md#metrics), served by the admin listener at `GET /metrics`.
 *
 * Each Gateway owns one Registry (never prom-client's global one), so several gateways in one process,
 * as in the tests, never share a counter. Nothing on the request path calls into this module directly:
 * - requests, durations and upstream errors are counted from the decision log's listener, one call per
 *   finished decision, with the same route, decision and reason the log line carries. Requests and
 *   durations are kept in `DecisionCounts`, plain numbers found by two Map lookups, and handed to
 *   prom-client only at scrape time: prom-client's own `inc` and `observe` validate and hash the label
 *   set on every call, which was a tenth of scopegate's own work on a cached-token request;
 * - JWKS fetches are counted from `KeyStoreEvents.fetched`;
 * - key counts, key states, key staleness, readiness and the token cache counters are read at scrape
 *   time from the engine in force, so a reload (which builds a new engine) is picked up without any
 *   bookkeeping on the hot path.
 *
 * Under `server.workers > 1` every worker has its own registry and the primary adds them up
 * (`src/process/cluster.ts`); each metric's `aggregator` says how: counters and histograms are summed, the JWKS
 * gauges take the largest value, since every worker holds the same keys.
 */
import type { FastifyInstance } from 'fastify'
import {
  Counter, Gauge, Histogram, Registry, collectDefaultMetrics,
  type CounterConfiguration, type HistogramConfiguration, type MetricObjectWithValues, type MetricValue, type MetricValueWithName
} from 'prom-client'
import type { Engine } from '../decision/engine.js'
import type { DecisionRecord } from '../http/decision-log.js'
import type { KeyStoreState, KeyStoreStatus } from '../keys/key-store.js'
import type { TokenCache } from '../token/token-cache.js'
import type { IntrospectionState } from '../token/introspection-health.js'

export const METRIC_PREFIX = 'scopegate_'

/** Seconds. From a cached-token allow (well under a millisecond) to a slow upstream. */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

export type ReloadResult = 'ok' | 'error'

/** Every state an introspection endpoint can be in: `introspection_state` has one series per state. */
const INTROSPECTION_STATES: readonly IntrospectionState[] = ['unknown', 'ok', 'failing', 'unavailable']

/** Every state a key store can be in: `jwks_state` has one series per state, 1 for the current one. */
const KEY_STORE_STATES: readonly KeyStoreState[] = ['starting', 'ready', 'stale', 'unavailable']

/** prom-client's default gauges whose names end in `_total`, removed (see the constructor). */
const NOT_COUNTERS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

/** The `kind` label of `upstream_errors_total`, from the decision's reason. */
const UPSTREAM_KINDS: Readonly<Record<string, string>> = {
  upstream_refused: 'refused',
  upstream_reset: 'reset',
  upstream_tls: 'tls',
  upstream_timeout: 'timeout'
}

export class GatewayMetrics {
  readonly registry = new Registry()
  private readonly decisions = new DecisionCounts()
  private readonly jwksFetches: Counter<'issuer' | 'result'>
  private readonly configReloads: Counter<'result'>
  private readonly lastReload: Gauge
  private readonly upstreamErrors: Counter<'upstream' | 'kind'>
  private readonly introspections: Counter<'issuer' | 'result'>
  private readonly cacheCounters: CacheCounter[]
  private readonly rateLimitStoreErrors: Counter<'route' | 'outcome'>

  /** @param engine the engine in force, read at scrape time; null where there is none (a cluster primary). */
  constructor (engine: () => Engine | null) {
    const registers = [this.registry]
    const name = (suffix: string): string => METRIC_PREFIX + suffix

    const decisions = this.decisions
    // eslint-disable-next-line no-new -- a prom-client metric registers itself in its constructor
    new DecisionRequests(decisions, {
      name: name('requests_total'),
      help: 'Decisions made, by route id ("" when no route matched), decision (allow, deny, audit_deny) and reason code.',
      labelNames: ['route', 'decision', 'reason'],
      registers
    })
    // eslint-disable-next-line no-new -- a prom-client metric registers itself in its constructor
    new DecisionDurations(decisions, {
      name: name('request_duration_seconds'),
      help: 'Time from the start of the decision to the end of the response, upstream time included, in seconds.',
      labelNames: ['route', 'decision'],
      buckets: DURATION_BUCKETS,
      registers
    })
    this.jwksFetches = new Counter({
      name: name('jwks_fetches_total'),
      help: 'JWKS fetches per issuer id, by result (ok, error). A failed discovery counts as a failed fetch.',
      labelNames: ['issuer', 'result'] as const,
      registers
    })
    keyStoreGauge(name('jwks_keys'), 'Usable signing keys held per issuer id.', (status) => status.keys, engine, registers)
    keyStoreGauge(name('jwks_stale_seconds'),
      'Seconds the issuer has been failing since its last successful JWKS fetch (0 while healthy): how long stale keys have been in use. They are dropped at jwks.maxStale.',
      (status) => status.failingForSeconds ?? 0, engine, registers)
    keyStateGauge(name('jwks_state'), engine, registers)
    introspectionStateGauge(name('introspection_state'), engine, registers)
    this.cacheCounters = [
      cacheCounter(name('token_cache_hits_total'), 'Verified-token cache hits: tokens accepted without a signature check.', (cache) => cache.hits, engine, registers),
      cacheCounter(name('token_cache_misses_total'), 'Verified-token cache misses: tokens verified afresh, or refused from the cache of settled failures.', (cache) => cache.misses, engine, registers)
    ]
    this.configReloads = new Counter({
      name: name('config_reloads_total'),
      help: 'Config reloads (SIGHUP or file change), by result: ok (swapped in) or error (refused; the previous config stays).',
      labelNames: ['result'] as const,
      registers
    })
    // Both series exist from the start, so `increase(...{result="error"}[5m])` works before the first failure.
    this.configReloads.inc({ result: 'ok' }, 0)
    this.configReloads.inc({ result: 'error' }, 0)
    this.lastReload = lastReloadGauge(name('config_last_reload_successful'), registers)
    this.upstreamErrors = new Counter({
      name: name('upstream_errors_total'),
      help: 'Allowed requests the upstream failed, by upstream id and kind (refused, reset, timeout).',
      labelNames: ['upstream', 'kind'] as const,
      registers
    })
    this.introspections = new Counter({
      name: name('introspections_total'),
      help: 'Introspection calls per issuer id (docs/opaque-tokens.md), by result: active, inactive, invalid (an active answer refused), or the failure (timeout, network, status, redirect, too_large, not_json).',
      labelNames: ['issuer', 'result'] as const,
      registers
    })
    // Rate limits (docs/rate-limits.md): limited requests are counted by requests_total{reason="rate_limited"}.
    this.rateLimitStoreErrors = new Counter({
      name: name('rate_limit_store_errors_total'),
      help: 'Rate-limit checks the shared store (Redis) could not answer, by route id and outcome (open: let through, closed: 503).',
      labelNames: ['route', 'outcome'] as const,
      registers
    })
    workersGauge(name('workers'), engine, registers)
    // Node's default process metrics: CPU, memory, event loop, GC, handles.
    collectDefaultMetrics({ register: this.registry })
    // Gauges named like counters, which `promtool check metrics` rejects; each is the sum of the gauge of
    // the same name without `_total` (nodejs_active_handles{type}...), so nothing is lost.
    for (const misnamed of NOT_COUNTERS) this.registry.removeSingleMetric(misnamed)
  }

  /** A decision listener (see `http/decision-log.ts`): counts every finished decision. */
  readonly onDecision = (record: DecisionRecord): void => {
    this.decisions.add(record.route ?? '', record.decision, record.reason, record.latencyMs / 1000)
    const kind = UPSTREAM_KINDS[record.reason]
    if (kind !== undefined) this.upstreamErrors.inc({ upstream: record.upstream ?? '', kind })
  }

  /** For `KeyStoreEvents.fetched`: counts JWKS fetches (discovery documents are not counted apart). */
  readonly onKeysFetched = (issuerId: string, result: 'ok' | 'error', what: 'jwks' | 'discovery'): void => {
    if (what === 'jwks') this.jwksFetches.inc({ issuer: issuerId, result })
  }

  /** For `EngineOptions.introspectionEvents`: counts introspection calls (cached answers are not calls). */
  readonly onIntrospection = (issuerId: string, result: string): void => {
    this.introspections.inc({ issuer: issuerId, result })
  }

  /**
   * An engine was replaced (a reload): its token cache's counts are kept, so the cache counters never go
   * down, however many reloads come between two scrapes.
   */
  engineReplaced (previous: Engine): void {
    for (const counter of this.cacheCounters) counter.retire(previous.tokenCache)
  }

  /** Registers `redis_connected`, read at scrape time: only a process with a redis section has it. */
  watchRedis (connected: () => boolean): void {
    // eslint-disable-next-line no-new -- a prom-client metric registers itself in its constructor
    new Gauge({
      name: METRIC_PREFIX + 'redis_connected',
      help: '1 while the Redis client of the redis section is connected, 0 while it is not.',
      aggregator: 'min',
      registers: [this.registry],
      collect () { this.set(connected() ? 1 : 0) }
    })
  }

  /**
   * Registers `ready`, read at scrape time: 1 while `/readyz` would answer 200 for this process (not
   * shutting down, every issuer's keys usable, no introspection endpoint unavailable), without the retry `/readyz` starts. The group's is the
   * smallest of its workers', as the group's `/readyz` needs every serving worker ready.
   */
  watchReadiness (engine: () => Engine, closing: () => boolean): void {
    // eslint-disable-next-line no-new -- a prom-client metric registers itself in its constructor
    new Gauge({
      name: METRIC_PREFIX + 'ready',
      help: '1 while this process is ready (/readyz 200: not shutting down, every issuer has usable keys, no introspection endpoint unavailable), 0 while not.',
      aggregator: 'min',
      registers: [this.registry],
      collect () { this.set(!closing() && keysUsable(engine()) && (engine().introspection?.usable() ?? true) ? 1 : 0) }
    })
  }

  /** A rate-limit check the shared store failed; `open`: the request went through. */
  readonly onRateLimitStoreError = (route: string, open: boolean): void => {
    this.rateLimitStoreErrors.inc({ route, outcome: open ? 'open' : 'closed' })
  }

  /** One call per reload attempt, by whoever performs it (see `config/reload.ts`). */
  reloaded (result: ReloadResult): void {
    this.configReloads.inc({ result })
    this.lastReload.set(result === 'ok' ? 1 : 0)
  }

  /** The Prometheus text exposition of this registry. */
  async render (): Promise<{ contentType: string, body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }
}

/** One (route, decision) pair: its requests by reason, and its duration histogram. */
interface Series {
  labels: { route: string, decision: string }
  reasons: Map<string, number>
  /** Observations per bucket of DURATION_BUCKETS (not cumulative); the last slot is above every bound. */
  buckets: number[]
  sum: number
}

/**
 * The decision counts behind `requests_total` and `request_duration_seconds`. The label values come
 * from the compiled config and the reason codes, so the strings repeat and their hashes are cached.
 */
export class DecisionCounts {
  private readonly byRoute = new Map<string, Map<string, Series>>()

  add (route: string, decision: string, reason: string, seconds: number): void {
    let byDecision = this.byRoute.get(route)
    if (byDecision === undefined) this.byRoute.set(route, byDecision = new Map())
    let series = byDecision.get(decision)
    if (series === undefined) {
      series = { labels: { route, decision }, reasons: new Map(), buckets: new Array<number>(DURATION_BUCKETS.length + 1).fill(0), sum: 0 }
      byDecision.set(decision, series)
    }
    series.reasons.set(reason, (series.reasons.get(reason) ?? 0) + 1)
    let bucket = 0
    while (bucket < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[bucket] as number)) bucket++
    series.buckets[bucket] = (series.buckets[bucket] as number) + 1
    series.sum += seconds
  }

  /** Forgets every series (`Registry.resetMetrics`). */
  clear (): void { this.byRoute.clear() }

  private * series (): Iterable<Series> {
    for (const byDecision of this.byRoute.values()) yield * byDecision.values()
  }

  /** `requests_total`'s samples. */
  requests (): Array<MetricValue<string>> {
    const values: Array<MetricValue<string>> = []
    for (const { labels, reasons } of this.series()) {
      for (const [reason, value] of reasons) values.push({ labels: { ...labels, reason }, value })
    }
    return values
  }

  /**
   * A histogram's samples in prom-client's layout: cumulative `_bucket`s (`le`), then `_sum` and `_count`;
   * the route and decision are `sharedLabels`, as prom-client's own histogram keeps them.
   */
  durations (name: string): Array<MetricValueWithName<string> & { sharedLabels: object }> {
    const values: Array<MetricValueWithName<string> & { sharedLabels: object }> = []
    for (const { labels, buckets, sum } of this.series()) {
      let count = 0
      buckets.forEach((n, i) => {
        count += n
        values.push({ metricName: `${name}_bucket`, labels: { le: DURATION_BUCKETS[i] ?? '+Inf' }, sharedLabels: labels, value: count })
      })
      values.push({ metricName: `${name}_sum`, labels: {}, sharedLabels: labels, value: sum }, { metricName: `${name}_count`, labels: {}, sharedLabels: labels, value: count })
    }
    return values
  }
}

/**
 * `requests_total`: a prom-client Counter whose samples are DecisionCounts', read when scraped. The
 * registry reads a counter through `get()` (the text exposition and the cluster's `getMetricsAsJSON`)
 * and clears it through `reset()`; both are served from DecisionCounts. Summed across workers.
 */
class DecisionRequests extends Counter<'route' | 'decision' | 'reason'> {
  private readonly counts: DecisionCounts

  constructor (counts: DecisionCounts, config: CounterConfiguration<'route' | 'decision' | 'reason'>) {
    super(config)
    this.counts = counts
  }

  override async get (): Promise<MetricObjectWithValues<MetricValue<'route' | 'decision' | 'reason'>>> {
    // The Counter's own name, help, type and aggregator; it holds no samples, as nothing increments it.
    return { ...await super.get(), values: this.counts.requests() }
  }

  override reset (): void {
    super.reset()
    // prom-client's constructor calls reset() before this class has set its fields.
    ;(this.counts as DecisionCounts | undefined)?.clear()
  }
}

/**
 * `request_duration_seconds`: a prom-client Histogram whose samples are DecisionCounts', as above.
 * prom-client has no public way to set a histogram's buckets, and its registry reads a histogram through
 * `getForPromString()` (the text exposition, and `get()` for JSON adds the shared labels to each
 * sample): that one method is replaced. `test/unit/decision-counts.test.ts` holds the result to what
 * prom-client's own Histogram shows for the same observations, in one process and across workers.
 */
class DecisionDurations extends Histogram<'route' | 'decision'> {
  private readonly counts: DecisionCounts
  private readonly metric: { name: string, help: string }

  constructor (counts: DecisionCounts, config: HistogramConfiguration<'route' | 'decision'>) {
    super(config)
    this.counts = counts
    this.metric = { name: config.name, help: config.help }
  }

  async getForPromString (): Promise<{ name: string, help: string, type: 'histogram', aggregator: 'sum', values: Array<MetricValueWithName<string> & { sharedLabels: object }> }> {
    const { name, help } = this.metric
    return { name, help, type: 'histogram', aggregator: 'sum', values: this.counts.durations(name) }
  }

  override reset (): void {
    super.reset()
    // prom-client's constructor calls reset() before this class has set its fields.
    ;(this.counts as DecisionCounts | undefined)?.clear()
  }
}

/**
 * A gauge per issuer, read at scrape time from the key stores of the engine in force. Across workers it
 * takes the largest value, since every worker holds the same keys.
 */
function keyStoreGauge (name: string, help: string, read: (status: KeyStoreStatus) => number,
  engine: () => Engine | null, registers: Registry[]): void {
  // eslint-disable-next-line no-new -- a prom-client metric registers itself in its constructor
  new Gauge({
    name,
    help,
    labelNames: ['issuer'] as const,
    aggregator: 'max',
    registers,
    collect () {
      this.reset()
      for (const store of engine()?.keyStores.values() ?? []) this.set({ issuer: store.issuer.id }, read(store.status()))
    }
  })
}

/** `config_last_reload_successful`: 1 from the start; set by each reload attempt. */
function lastReloadGauge (name: string, registers: Registry[]): Gauge {
  const gauge = new Gauge({
    name,
    help: '1 while the config in force is the last one read (start, or last reload ok), 0 after a refused reload until one succeeds.',
    // Under server.workers the primary counts reloads; a worker's 1 must not hide the primary's 0.
    aggregator: 'min',
    registers
  })
  gauge.set(1)
  return gauge
}

/**
 * `workers`: 1 in every process that serves, summed across the group, so a scrape says how many workers
 * it holds. A cluster primary has no engine and serves nothing: its 0 adds nothing.
 */
function workersGauge (name: string, engine: () => Engine | null, registers: Registry[]): void {
  // eslint-disable-next-line no-new -- a prom-client metric registers itself in its constructor
  new Gauge({
    name,
    help: 'Processes serving requests whose metrics this scrape adds up: 1 for a single process; under server.workers, the workers that answered.',
    aggregator: 'sum',
    registers,
    collect () { this.set(engine() === null ? 0 : 1) }
  })
}

/** Whether every issuer's keys are usable (fresh, or stale within jwks.maxStale): readiness's key check. */
function keysUsable (engine: Engine): boolean {
  for (const store of engine.keyStores.values()) {
    const { state } = store.status()
    if (state !== 'ready' && state !== 'stale') return false
  }
  return true
}

/**
 * `jwks_state`: one series per issuer and state, 1 for the state the issuer's keys are in, 0 for the
 * others (a state set), so a dashboard can show it and an alert can match `state="unavailable"` without
 * knowing the codes. Across workers the largest value: a state any worker is in shows.
 */
function keyStateGauge (name: string, engine: () => Engine | null, registers: Registry[]): void {
  // eslint-disable-next-line no-new -- a prom-client metric registers itself in its constructor
  new Gauge({
    name,
    help: 'Key state per issuer id, 1 for the current one: starting (no fetch done yet), ready, stale (fetches failing, last keys in use), unavailable (no usable keys: requests get 503).',
    labelNames: ['issuer', 'state'] as const,
    aggregator: 'max',
    registers,
    collect () {
      this.reset()
      for (const store of engine()?.keyStores.values() ?? []) {
        const current = store.status().state
        for (const state of KEY_STORE_STATES) this.set({ issuer: store.issuer.id, state }, state === current ? 1 : 0)
      }
    }
  })
}

/**
 * `introspection_state`: as `jwks_state`, one series per introspecting issuer and state, 1 for the state
 * its endpoint is in (docs/opaque-tokens.md#when-the-endpoint-fails). Across workers the largest value.
 */
function introspectionStateGauge (name: string, engine: () => Engine | null, registers: Registry[]): void {
  // eslint-disable-next-line no-new -- a prom-client metric registers itself in its constructor
  new Gauge({
    name,
    help: 'Introspection endpoint state per issuer id, 1 for the current one: unknown (not called yet), ok, failing (calls fail; it answered before), unavailable (calls fail and it never answered since start: not ready).',
    labelNames: ['issuer', 'state'] as const,
    aggregator: 'max',
    registers,
    collect () {
      this.reset()
      for (const { issuer, state: current } of engine()?.introspection?.status() ?? []) {
        for (const state of INTROSPECTION_STATES) this.set({ issuer, state }, state === current ? 1 : 0)
      }
    }
  })
}

interface CacheCounter {
  /** The cache of an engine just replaced: its count is kept in the total from now on. */
  retire: (cache: TokenCache) => void
}

/**
 * A counter mirroring a token-cache counter. A reload builds a new engine with a new, empty cache; the
 * count of every cache replaced is carried over (GatewayMetrics.engineReplaced), so the counter never
 * goes down. The count is taken when the cache is replaced, and only the cache in force is read at
 * scrape time, so no replaced cache is held on to.
 */
function cacheCounter (name: string, help: string, read: (cache: TokenCache) => number,
  engine: () => Engine | null, registers: Registry[]): CacheCounter {
  const retiredCaches = new WeakSet<TokenCache>()
  let retired = 0
  let reported = 0
  // eslint-disable-next-line no-new -- a prom-client metric registers itself in its constructor
  new Counter({
    name,
    help,
    registers,
    collect () {
      const cache = engine()?.tokenCache ?? null
      const total = retired + (cache === null || retiredCaches.has(cache) ? 0 : read(cache))
      if (total > reported) {
        this.inc(total - reported)
        reported = total
      }
    }
  })
  return {
    retire (cache) {
      if (retiredCaches.has(cache)) return
      retiredCaches.add(cache)
      retired += read(cache)
    }
  }
}

/** The admin listener's `GET /metrics`, rendering whatever `render` returns (one process, or the group). */
export function metricsRoute (render: () => Promise<{ contentType: string, body: string }>): (app: FastifyInstance) => void {
  return (app) => {
    app.get('/metrics', async (request, reply) => {
      try {
        const { contentType, body } = await render()
        return await reply.header('content-type', contentType).header('cache-control', 'no-store').send(body)
      } catch (err) {
        request.log.error({ err: { message: (err as Error).message } }, 'metrics unavailable')
        return await reply.code(503).header('cache-control', 'no-store').send({ error: 'metrics_unavailable' })
      }
    })
  }
}
