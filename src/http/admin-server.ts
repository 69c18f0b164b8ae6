/**
 * The admin listener: liveness, readiness (config loaded and every issuer has usable keys), and the
 * operational endpoints. It is a separate listener so none of its paths can collide with an upstream's.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { Engine } from '../engine.js'

export interface AdminServerOptions {
  engine: () => Engine
  logger: Logger
  /** True once shutdown has begun: readiness fails at once so load balancers stop sending. */
  closing: () => boolean
  /** Extra routes (metrics, forward-auth, JWKS), registered by their own modules. */
  plugins?: Array<(app: FastifyInstance) => void | Promise<void>>
}

export async function buildAdminServer (options: AdminServerOptions): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: options.logger, logController: new LogController({ disableRequestLogging: true }), return503OnClosing: false, forceCloseConnections: 'idle' })

  app.get('/healthz', async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }))

  app.get('/readyz', async (_request, reply) => {
    const engine = options.engine()
    const issuers = [...engine.keyStores.values()].map((store) => store.status())
    const closing = options.closing()
    const ready = !closing && issuers.every((s) => s.state === 'ready' || s.state === 'stale')
    return reply.code(ready ? 200 : 503).header('cache-control', 'no-store').send({
      status: closing ? 'shutting_down' : ready ? 'ready' : 'not_ready',
      config: engine.config.source,
      issuers
    })
  })

  for (const plugin of options.plugins ?? []) await plugin(app)
  return app
}
