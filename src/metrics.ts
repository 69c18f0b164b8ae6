/**
 * Prometheus metrics (contract §8), served by the admin listener at `GET /metrics`.
 *
 * Each Gateway owns one Registry (never prom-client's global one), so several gateways in one process,
 * as in the tests, never share a counter. Nothing on the request path calls into this module directly:
 * - requests, durations and upstream errors are counted from the decision log's listener, one call per
 *   finished decision, with the same route, decision and reason the log line carries;
 * - JWKS fetches are counted from `KeyStoreEvents.fetched`;
 * - key counts, key staleness and the token cache counters are read at scrape time from the engine in
 *   force, so a reload (which builds a new engine) is picked up without any bookkeeping on the hot path.
 *
 * Under `server.workers > 1` every worker has its own registry and the primary adds them up
 * (`src/cluster.ts`); each metric's `aggregator` says how: counters and histograms are summed, the JWKS
 * gauges take the largest value, since every worker holds the same keys.
 */
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Engine } from './engine.js'
import type { DecisionRecord } from './http/decision-log.js'
import type { TokenCache } from './token/token-cache.js'

export const METRIC_PREFIX = 'scopegate_'

/** Seconds. From a cached-token allow (well under a millisecond) to a slow upstream. */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

export type ReloadResult = 'ok' | 'error'

/** The `kind` label of `upstream_errors_total`, from the decision's reason. */
const UPSTREAM_KINDS: Readonly<Record<string, string>> = {
  upstream_refused: 'refused',
  upstream_reset: 'reset',
  upstream_timeout: 'timeout'
}

export class GatewayMetrics {
  readonly registry = new Registry()
  private readonly requests: Counter<'route' | 'decision' | 'reason'>
  private readonly duration: Histogram<'route' | 'decision'>
  private readonly jwksFetches: Counter<'issuer' | 'result'>
  private readonly configReloads: Counter<'result'>
  private readonly upstreamErrors: Counter<'upstream' | 'kind'>

  /** @param engine the engine in force, read at scrape time; null where there is none (a cluster primary). */
  constructor (engine: () => Engine | null) {
    const registers = [this.registry]
    const name = (suffix: string): string => METRIC_PREFIX + suffix

    this.requests = new Counter({
      name: name('requests_total'),
      help: 'Decisions made, by route id ("" when no route matched), decision (allow, deny, audit_deny) and reason code.',
      labelNames: ['route', 'decision', 'reason'] as const,
      registers
    })
    this.duration = new Histogram({
      name: name('request_duration_seconds'),
      help: 'Time from the start of the decision to the end of the response, upstream time included, in seconds.',
      labelNames: ['route', 'decision'] as const,
      buckets: DURATION_BUCKETS,
      registers
    })
    this.jwksFetches = new Counter({
      name: name('jwks_fetches_total'),
      help: 'JWKS fetches per issuer id, by result (ok, error). A failed discovery counts as a failed fetch.',
      labelNames: ['issuer', 'result'] as const,
      registers
    })
    new Gauge({
      name: name('jwks_keys'),
      help: 'Usable signing keys held per issuer id.',
      labelNames: ['issuer'] as const,
      aggregator: 'max',
      registers,
      collect () {
        this.reset()
        for (const store of engine()?.keyStores.values() ?? []) this.set({ issuer: store.issuer.id }, store.status().keys)
      }
    })
    new Gauge({
      name: name('jwks_stale_seconds'),
      help: 'Seconds the issuer has been failing since its last successful JWKS fetch (0 while healthy): how long stale keys have been in use. They are dropped at jwks.maxStale.',
      labelNames: ['issuer'] as const,
      aggregator: 'max',
      registers,
      collect () {
        this.reset()
        for (const store of engine()?.keyStores.values() ?? []) this.set({ issuer: store.issuer.id }, store.status().failingForSeconds ?? 0)
      }
    })
    cacheCounter(name('token_cache_hits_total'), 'Verified-token cache hits: tokens accepted without a signature check.', (cache) => cache.hits, engine, registers)
    cacheCounter(name('token_cache_misses_total'), 'Verified-token cache misses: tokens verified afresh, or refused from the cache of settled failures.', (cache) => cache.misses, engine, registers)
    this.configReloads = new Counter({
      name: name('config_reloads_total'),
      help: 'Config reloads (SIGHUP or file change), by result: ok (swapped in) or error (refused; the previous config stays).',
      labelNames: ['result'] as const,
      registers
    })
    // Both series exist from the start, so `increase(...{result="error"}[5m])` works before the first failure.
    this.configReloads.inc({ result: 'ok' }, 0)
    this.configReloads.inc({ result: 'error' }, 0)
    this.upstreamErrors = new Counter({
      name: name('upstream_errors_total'),
      help: 'Allowed requests the upstream failed, by upstream id and kind (refused, reset, timeout).',
      labelNames: ['upstream', 'kind'] as const,
      registers
    })
    // Node's default process metrics: CPU, memory, event loop, GC, handles.
    collectDefaultMetrics({ register: this.registry })
  }

  /** A decision listener (see `http/decision-log.ts`): counts every finished decision. */
  readonly onDecision = (record: DecisionRecord): void => {
    const route = record.route ?? ''
    this.requests.inc({ route, decision: record.decision, reason: record.reason })
    this.duration.observe({ route, decision: record.decision }, record.latencyMs / 1000)
    const kind = UPSTREAM_KINDS[record.reason]
    if (kind !== undefined) this.upstreamErrors.inc({ upstream: record.upstream ?? '', kind })
  }

  /** For `KeyStoreEvents.fetched`: counts JWKS fetches (discovery documents are not counted apart). */
  readonly onKeysFetched = (issuerId: string, result: 'ok' | 'error', what: 'jwks' | 'discovery'): void => {
    if (what === 'jwks') this.jwksFetches.inc({ issuer: issuerId, result })
  }

  /** One call per reload attempt, by whoever performs it (see `config/reload.ts`). */
  reloaded (result: ReloadResult): void {
    this.configReloads.inc({ result })
  }

  /** The Prometheus text exposition of this registry. */
  async render (): Promise<{ contentType: string, body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }
}

/**
 * A counter mirroring a token-cache counter. A reload builds a new engine with a new, empty cache; the
 * count of the cache it replaced is carried over, so the counter never goes down.
 */
function cacheCounter (name: string, help: string, read: (cache: TokenCache) => number,
  engine: () => Engine | null, registers: Registry[]): void {
  let current: TokenCache | null = null
  let retired = 0
  let reported = 0
  new Counter({
    name,
    help,
    registers,
    collect () {
      const cache = engine()?.tokenCache ?? null
      if (cache !== current) {
        if (current !== null) retired += read(current)
        current = cache
      }
      const total = retired + (cache === null ? 0 : read(cache))
      if (total > reported) {
        this.inc(total - reported)
        reported = total
      }
    }
  })
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
