/**
 * The admin listener: liveness, readiness (config loaded and every issuer has usable keys), and the
 * operational endpoints. It is a separate listener so none of its paths can collide with an upstream's.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyServerFactory } from 'fastify'
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { Engine } from '../decision/engine.js'
import { adminFrameworkError } from './forward-auth.js'

export interface AdminServerOptions {
  engine: () => Engine
  logger: Logger
  /** True once shutdown has begun: readiness fails at once so load balancers stop sending. */
  closing: () => boolean
  /** Extra routes (metrics, forward-auth, JWKS), registered by their own modules. */
  plugins?: Array<(app: FastifyInstance) => void | Promise<void>>
  /** Readiness of a process group (a cluster worker asks the primary, see `cluster.ts`); default: this process's. */
  readiness?: () => Promise<Readiness>
  /** Whether the shared Redis is connected; undefined without a redis section. */
  redis?: () => boolean | undefined
  /** Whether the ext_authz gRPC listener is open; undefined without `server.extAuthz` (docs/istio.md). */
  extAuthz?: () => boolean | undefined
  /** The listener's server when it uses TLS (`listener-server.ts`). */
  serverFactory?: FastifyServerFactory
}

export interface Readiness {
  ready: boolean
  body: Record<string, unknown>
}

/**
 * This process: ready when not shutting down, every issuer has usable (fresh or stale) keys, and no
 * issuer's introspection endpoint is `unavailable` (failing and never answered since start; one that
 * answered before and fails now is `failing`, shown but still ready, as stale keys are).
 * `redis` (connected or not; undefined without a redis section) is shown but does not make it unready:
 * each rate-limited route's `onStoreError` decides what an outage means (docs/rate-limits.md#redis).
 */
export function localReadiness (engine: Engine, closing: boolean, redis?: boolean, extAuthz?: boolean): Readiness {
  // probe(): a store with no usable keys retries from here too, so a not-ready instance (sent no traffic) recovers.
  const issuers = [...engine.keyStores.values()].map((store) => store.probe())
  // A configured ext_authz listener that is not open leaves Envoy's Checks unanswered: not ready.
  // probe(): an introspection endpoint that never answered is asked again from here too (once per cooldown).
  const introspection = engine.introspection?.probe()
  const ready = !closing && extAuthz !== false && issuers.every((s) => s.state === 'ready' || s.state === 'stale') &&
    (introspection === undefined || introspection.every((s) => s.state !== 'unavailable'))
  const body: Readiness['body'] = { status: closing ? 'shutting_down' : ready ? 'ready' : 'not_ready', config: engine.config.source, issuers }
  if (introspection !== undefined) body.introspection = introspection
  if (redis !== undefined) body.redis = { state: redis ? 'connected' : 'disconnected' }
  if (extAuthz !== undefined) body.extAuthz = { state: extAuthz ? 'listening' : 'closed' }
  return { ready, body }
}

/** What readiness is made of: the options /readyz reads. */
export type ReadinessSources = Pick<AdminServerOptions, 'engine' | 'closing' | 'readiness' | 'redis' | 'extAuthz'>

/**
 * Readiness as /readyz answers it, also the ext_authz listener's gRPC health (docs/istio.md#health-checks).
 * Shutting down answers at once, without asking the group: load balancers must stop sending now.
 */
export async function readinessOf (sources: ReadinessSources): Promise<Readiness> {
  return sources.readiness === undefined || sources.closing()
    ? localReadiness(sources.engine(), sources.closing(), sources.redis?.(), sources.extAuthz?.())
    : await sources.readiness()
}

export async function buildAdminServer (options: AdminServerOptions): Promise<FastifyInstance> {
  const app = Fastify({ ...(options.serverFactory === undefined ? {} : { serverFactory: options.serverFactory }), loggerInstance: options.logger, logController: new LogController({ disableRequestLogging: true }), return503OnClosing: false, forceCloseConnections: 'idle', frameworkErrors: adminFrameworkError })

  app.get('/healthz', async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }))

  app.get('/readyz', async (_request, reply) => {
    const { ready, body } = await readinessOf(options)
    return reply.code(ready ? 200 : 503).header('cache-control', 'no-store').send(body)
  })

  for (const plugin of options.plugins ?? []) await plugin(app)
  return app
}
