/**
 * The running gateway: the current engine (swapped whole on reload), the proxy and admin listeners,
 * and an orderly shutdown. This is the only module that wires stages, HTTP and lifecycle together.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { CompiledConfig } from '../config/types.js'
import { buildEngine, loadKeys, type Engine, type EngineOptions } from '../decision/engine.js'
import { buildAdminServer, readinessOf, type Readiness, type ReadinessSources } from '../http/admin-server.js'
import { createDecisionLog, type DecisionListener, type DecisionRecord } from '../http/decision-log.js'
import { forwardAuth } from '../http/forward-auth.js'
import { closeWithin } from '../http/drain.js'
import { buildProxyServer, proxyHttpOptions } from '../http/proxy-server.js'
import { certificateThumbprint } from '../http/client-certificate.js'
import { TlsListeners } from './tls-listeners.js'
import { OpenWebSockets } from '../http/open-websockets.js'
import { handleUpgrade } from '../http/upgrade.js'
import { applyLogLevel, createLogger } from '../observability/logger.js'
import { GatewayMetrics, metricsRoute } from '../observability/metrics.js'
import type { Allow } from '../decision/decide.js'
import { jwksRoutes } from '../http/jwks-routes.js'
import type { ReissueCacheLimits } from '../reissue/reissue-cache.js'
import { Reissuer } from '../reissue/reissuer.js'
import type { Redis } from 'ioredis'
import { RateLimiter } from '../limits/rate-limiter.js'
import { GatewayRedis } from './gateway-redis.js'
import { RedisClients } from '../state/redis-clients.js'
import { insecureUpstreamWarning, insecureUpstreams } from '../config/compile-upstream-tls.js'
import type { ExtAuthzServer } from '../grpc/ext-authz-server.js'
import { GatewayTracing } from './gateway-tracing.js'
import { openExtAuthz } from './ext-authz-listener.js'
import type { Environment } from '../observability/tracing-settings.js'
import { DenialFeed } from '../observability/denial-feed.js'
import { takeSnapshot, type StatusSnapshot } from '../observability/status-snapshot.js'
import { statusPage } from '../http/status-page.js'

/** What a cluster worker's admin listener reports for the whole process group (see `worker-link.ts`). */
export interface ProcessGroup {
  metrics: () => Promise<{ contentType: string, body: string }>
  readiness: () => Promise<Readiness>
  /** The group's status page snapshot (docs/observability.md#status-page). */
  status?: () => Promise<StatusSnapshot>
}

export interface GatewayOptions extends EngineOptions {
  config: CompiledConfig
  logger?: Logger
  decisionListeners?: DecisionListener[]
  /** Bounds of the re-issued token cache (`forward.authorization: reissue`). */
  reissueCache?: Partial<ReissueCacheLimits>
  /** In a cluster worker: /metrics and /readyz answer for the whole process group (see cluster.ts). */
  group?: ProcessGroup
  /** Most rate-limit buckets kept in memory (`store: memory`); default 100 000. */
  rateLimitEntries?: number
  /** Where the `OTEL_*` variables are read (docs/observability.md#configuration); default `process.env`. */
  env?: Environment
  /** The cluster worker this gateway is (shown on the status page); absent in a single process. */
  worker?: number
  /** Milliseconds between heartbeats on the status page's live feed; default 15 s. */
  statusHeartbeatMs?: number
  /** Milliseconds a Redis client stays open after a reload moved to another URL; default 30 s. */
  redisRetireGraceMs?: number
}

export interface GatewayAddresses {
  proxyUrl: string
  adminUrl: string
  /** `host:port` of the ext_authz gRPC listener, when `server.extAuthz` is set. */
  extAuthzAddress?: string
}

function urlOf (app: FastifyInstance, tls = false): string {
  const address = app.server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `${tls ? 'https' : 'http'}://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`
}

export class Gateway {
  readonly logger: Logger
  private engine: Engine
  private readonly engineOptions: EngineOptions
  private readonly decisionListeners: DecisionListener[]
  private closing = false
  private closed: Promise<void> | null = null
  private readonly group: ProcessGroup | undefined
  /** This gateway's Prometheus registry (docs/observability.md#metrics), served at the admin listener's /metrics. */
  readonly metrics: GatewayMetrics
  /** Signs and caches re-issued tokens; its keys are read at start and on each reload. */
  readonly reissue: Reissuer
  /** WebSockets open on the proxy listener: closed at token expiry, re-decided on reload, closed on shutdown. */
  readonly websockets: OpenWebSockets
  /** The process's Redis clients, one per URL, shared by rate limits and the DPoP replay store. */
  private readonly redisState: GatewayRedis
  /** Routes' rate limits; its memory buckets outlive reloads. */
  readonly limits: RateLimiter
  /** OpenTelemetry tracing: off unless the config enables it (docs/observability.md#tracing). */
  readonly tracing: GatewayTracing
  /** The denials the status page shows (docs/observability.md#status-page); kept across reloads. */
  readonly denials: DenialFeed
  private readonly worker: number | null
  private readonly statusHeartbeatMs: number | undefined
  proxy: FastifyInstance | null = null
  admin: FastifyInstance | null = null
  /** The Envoy ext_authz gRPC listener (docs/istio.md), when `server.extAuthz` is set. */
  extAuthz: ExtAuthzServer | null = null
  /** The listeners' TLS (docs/tls.md): certificates read at start, rotated without a restart; null before start. */
  tls: TlsListeners | null = null

  constructor (options: GatewayOptions) {
    this.logger = options.logger ?? createLogger({ level: options.config.server.logLevel })
    this.metrics = new GatewayMetrics(() => this.engine)
    this.group = options.group
    this.tracing = new GatewayTracing(options.env ?? process.env)
    this.engineOptions = {
      ...options,
      ...(options.config.telemetry.tracing.enabled ? { fetchFor: this.tracing.fetchFor(options.fetch, options.fetchFor) } : {}),
      keyEvents: {
        warn: (message, fields) => this.logger.warn(fields, message),
        info: (message, fields) => this.logger.info(fields, message),
        ...options.keyEvents,
        fetched: (issuerId, result, what) => {
          this.metrics.onKeysFetched(issuerId, result, what)
          options.keyEvents?.fetched?.(issuerId, result, what)
        }
      },
      introspectionEvents: (issuerId, result) => {
        this.metrics.onIntrospection(issuerId, result)
        options.introspectionEvents?.(issuerId, result)
      },
      redisFor: (section) => this.redisState.clients.client(section)
    }
    this.redisState = new GatewayRedis(this.metrics, new RedisClients({ graceMs: options.redisRetireGraceMs }))
    this.worker = options.worker ?? null
    this.statusHeartbeatMs = options.statusHeartbeatMs
    this.denials = new DenialFeed({ size: options.config.server.statusPage?.recentDenials ?? 50, now: options.now, worker: this.worker })
    // The feed costs nothing while the page is off: its counts start when the page is turned on.
    const denials = (record: DecisionRecord): void => { if (this.engine.config.server.statusPage !== null) this.denials.onDecision(record) }
    this.decisionListeners = [this.metrics.onDecision, denials, ...(options.decisionListeners ?? [])]
    this.engine = buildEngine(options.config, null, this.engineOptions)
    this.warnInsecureUpstreams(options.config)
    this.reissue = new Reissuer({ logger: this.logger, now: options.now, cache: options.reissueCache })
    this.websockets = new OpenWebSockets({ logger: this.logger, now: options.now })
    this.redisState.use(options.config.redis)
    this.metrics.watchReadiness(() => this.engine, () => this.closing)
    this.limits = new RateLimiter({
      redis: this.redisState.limitStore,
      now: options.now,
      maxEntries: options.rateLimitEntries,
      events: {
        storeError: (route, open, err) => {
          this.metrics.onRateLimitStoreError(route, open)
          this.logger.warn({ route, outcome: open ? 'open' : 'closed', err: { message: err instanceof Error ? err.message : String(err) } }, 'rate-limit store failed')
        }
      }
    })
  }

  /** The Redis client of the config in force (one per URL per process), or null without a redis section. */
  get redis (): Redis | null {
    return this.redisState.client
  }

  /** Whether the Redis client is connected; undefined without a redis section (for /readyz). */
  redisConnected (): boolean | undefined {
    return this.redisState.connected()
  }

  /** This process's status page snapshot (docs/observability.md#status-page). */
  statusSnapshot (): StatusSnapshot {
    return takeSnapshot({
      engine: this.engine,
      feed: this.denials,
      reissueCache: this.reissue.cache(),
      redis: this.redisConnected(),
      worker: this.worker,
      now: this.engine.now()
    })
  }

  /** The engine in force: read once per request, so a request finishes under the config it started with. */
  current (): Engine {
    return this.engine
  }

  /**
   * Swap in a new compiled config; key stores whose source did not change are kept. Resolves true once it
   * is in force, false if it was refused.
   */
  reload (config: CompiledConfig): Promise<boolean> {
    // Re-issue key files are read first: a config whose keys cannot be used is refused, the old one stays.
    return this.reissue.reload(config, () => {
      applyLogLevel(this.logger, this.engine.config.server.logLevel, config.server.logLevel)
      this.warnInsecureUpstreams(config)
      if (JSON.stringify(config.server.extAuthz) !== JSON.stringify(this.engine.config.server.extAuthz)) {
        this.logger.warn('server.extAuthz changed: the ext_authz listener follows at the next restart; its answers follow the new config now')
      }
      const previous = this.engine
      this.engine = buildEngine(config, previous, this.engineOptions)
      // The same URL keeps its connection; another one is opened, and the old closed after a grace period.
      if (config.redis?.url !== previous.config.redis?.url) {
        // Never the URL itself: it may hold a password.
        const change = config.redis === null ? 'removed' : previous.config.redis === null ? 'added' : 'another url'
        this.logger.info({ change }, 'the redis url changed: the connection follows')
      }
      this.redisState.use(config.redis)
      this.metrics.engineReplaced(previous)
      void loadKeys(this.engine)
      this.websockets.recheck(this.engine)
      // The listeners' certificate files are re-read too (their paths are start-up settings).
      this.tls?.reload('config')
      if (config.server.statusPage !== null) this.denials.resize(config.server.statusPage.recentDenials)
    })
  }

  /** An upstream whose certificate is not verified is never silent: one warning each, at start and on reload. */
  private warnInsecureUpstreams (config: CompiledConfig): void {
    for (const id of insecureUpstreams(config.upstreams)) this.logger.warn({ upstream: id }, insecureUpstreamWarning(id))
  }

  /** Fetch every issuer's keys once, then open both listeners. */
  async start (listen: { proxy?: { host: string, port: number }, admin?: { host: string, port: number } } = {}): Promise<GatewayAddresses> {
    const extAuthzAt = this.engine.config.server.extAuthz
    const engine = (): Engine => this.engine
    const group = this.group
    const decisions = createDecisionLog(this.logger, this.decisionListeners)
    await this.reissue.start(this.engine.config)
    const tracing = await this.tracing.start(this.engine.config, this.logger)
    const reissue = (decision: Allow): Promise<string> | undefined => this.reissue.forDecision(decision)
    const limits = this.limits
    const { config } = this.engine
    const tls = this.tls = new TlsListeners(config, proxyHttpOptions(config), this.logger)
    // The client certificate is read only where the listener asks for one.
    const thumbprint = config.server.proxy.tls !== null && config.server.proxy.tls.clientCertificate !== 'none' ? certificateThumbprint : undefined
    this.proxy = await buildProxyServer({ engine, logger: this.logger, decisions, reissue, limits, serverFactory: tls.proxy.serverFactory, certificateThumbprint: thumbprint, tracing })
    const proxyServer = this.proxy.server
    const serveHttp = (req: IncomingMessage, res: ServerResponse): boolean => proxyServer.emit('request', req, res)
    proxyServer.on('upgrade', handleUpgrade({ engine, decisions, reissue, websockets: this.websockets, limits, serveHttp, certificateThumbprint: thumbprint }))
    // What /readyz answers, and the ext_authz listener's gRPC health too.
    const readiness: ReadinessSources = {
      engine,
      closing: () => this.closing,
      readiness: group === undefined ? undefined : () => group.readiness(),
      redis: () => this.redisConnected(),
      extAuthz: () => this.extAuthz?.listening
    }
    this.admin = await buildAdminServer({
      ...readiness,
      logger: this.logger,
      serverFactory: tls.admin.serverFactory,
      // Each admin feature registers its own routes here, one line each.
      plugins: [
        jwksRoutes(this.reissue), metricsRoute(() => group?.metrics() ?? this.metrics.render()),
        forwardAuth({ engine, decisions, now: this.engineOptions.now, reissue, limits, tracing }),
        statusPage({
          settings: () => this.engine.config.server.statusPage,
          snapshot: group?.status ?? (async () => this.statusSnapshot()),
          feed: this.denials,
          heartbeatMs: this.statusHeartbeatMs
        })
      ]
    })
    await loadKeys(this.engine)
    const { server } = this.engine.config
    const proxyAt = listen.proxy ?? server.proxy
    const adminAt = listen.admin ?? server.admin
    await this.proxy.listen({ host: proxyAt.host, port: proxyAt.port })
    await this.admin.listen({ host: adminAt.host, port: adminAt.port })
    const addresses: GatewayAddresses = { proxyUrl: urlOf(this.proxy, server.proxy.tls !== null), adminUrl: urlOf(this.admin, server.admin.tls !== null) }
    if (extAuthzAt !== null) {
      const ready = async (): Promise<boolean> => (await readinessOf(readiness)).ready
      const opened = await openExtAuthz(extAuthzAt, tls.extAuthz, { engine, decisions, logger: this.logger, limits, reissue, ready, tracing })
      this.extAuthz = opened.server
      addresses.extAuthzAddress = opened.address
    }
    // Once every listener is open, the ext_authz one included: its certificate rotates with the others.
    tls.watch()
    return addresses
  }

  /** True once close() has begun. */
  get shuttingDown (): boolean {
    return this.closing
  }

  /**
   * Graceful shutdown, idempotent: /readyz answers 503 at once; the proxy listener stops accepting and
   * its requests under way finish, then the ext_authz listener's Checks; then the admin listener (which served /readyz, /metrics and forward
   * auth meanwhile) closes the same way. All within server.shutdownTimeout, after which what is left is cut.
   */
  close (): Promise<void> {
    this.closed ??= this.drain()
    return this.closed
  }

  private async drain (): Promise<void> {
    this.closing = true
    // The ext_authz listener's health watches hear NOT_SERVING now, as /readyz answers 503 now.
    this.extAuthz?.draining()
    this.tls?.close()
    const deadline = Date.now() + this.engine.config.server.shutdownTimeoutMs
    // Upgraded sockets are no longer the HTTP server's to close: each WebSocket is closed (1001) first.
    await this.websockets.closeAll(deadline)
    await closeWithin(this.proxy, deadline)
    await this.extAuthz?.close(deadline)
    await closeWithin(this.admin, deadline)
    // After the listeners: requests under way may still spend a shared bucket.
    await this.redisState.close()
    // Shared state last: the requests drained above may still have needed it (the DPoP replay store).
    this.engine.dpop.redis?.disconnect()
    // The spans of the requests drained above, exported within what is left of the shutdown timeout.
    await this.tracing.shutdown(deadline - Date.now())
  }
}
