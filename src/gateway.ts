/**
 * The running gateway: the current engine (swapped whole on reload), the proxy and admin listeners,
 * and an orderly shutdown. This is the only module that wires stages, HTTP and lifecycle together.
 */
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { CompiledConfig } from './config/types.js'
import { buildEngine, loadKeys, type Engine, type EngineOptions } from './engine.js'
import { buildAdminServer } from './http/admin-server.js'
import { createDecisionLog, type DecisionListener } from './http/decision-log.js'
import { buildProxyServer } from './http/proxy-server.js'
import { createLogger } from './logger.js'

export interface GatewayOptions extends EngineOptions {
  config: CompiledConfig
  logger?: Logger
  decisionListeners?: DecisionListener[]
}

export interface GatewayAddresses {
  proxyUrl: string
  adminUrl: string
}

function urlOf (app: FastifyInstance): string {
  const address = app.server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`
}

export class Gateway {
  readonly logger: Logger
  private engine: Engine
  private readonly engineOptions: EngineOptions
  private readonly decisionListeners: DecisionListener[]
  private closing = false
  proxy: FastifyInstance | null = null
  admin: FastifyInstance | null = null

  constructor (options: GatewayOptions) {
    this.logger = options.logger ?? createLogger({ level: options.config.server.logLevel })
    this.engineOptions = {
      ...options,
      keyEvents: {
        warn: (message, fields) => this.logger.warn(fields, message),
        ...options.keyEvents
      }
    }
    this.decisionListeners = options.decisionListeners ?? []
    this.engine = buildEngine(options.config, null, this.engineOptions)
  }

  /** The engine in force: read once per request, so a request finishes under the config it started with. */
  current (): Engine {
    return this.engine
  }

  /** Swap in a new compiled config; key stores whose source did not change are kept. */
  reload (config: CompiledConfig): void {
    this.engine = buildEngine(config, this.engine, this.engineOptions)
    void loadKeys(this.engine)
  }

  /** Fetch every issuer's keys once, then open both listeners. */
  async start (listen: { proxy?: { host: string, port: number }, admin?: { host: string, port: number } } = {}): Promise<GatewayAddresses> {
    const engine = (): Engine => this.engine
    const decisions = createDecisionLog(this.logger, this.decisionListeners)
    this.proxy = await buildProxyServer({ engine, logger: this.logger, decisions })
    this.admin = await buildAdminServer({
      engine,
      logger: this.logger,
      closing: () => this.closing,
      // Each admin feature registers its own routes here, one line each.
      plugins: []
    })
    await loadKeys(this.engine)
    const { server } = this.engine.config
    const proxyAt = listen.proxy ?? server.proxy
    const adminAt = listen.admin ?? server.admin
    await this.proxy.listen({ host: proxyAt.host, port: proxyAt.port })
    await this.admin.listen({ host: adminAt.host, port: adminAt.port })
    return { proxyUrl: urlOf(this.proxy), adminUrl: urlOf(this.admin) }
  }

  /** Stop accepting, let in-flight requests finish (bounded by server.shutdownTimeout), then close. */
  async close (): Promise<void> {
    this.closing = true
    const deadline = this.engine.config.server.shutdownTimeoutMs
    const closeAll = Promise.all([this.proxy?.close(), this.admin?.close()])
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, deadline) })
    await Promise.race([closeAll, timeout])
    clearTimeout(timer)
    this.proxy?.server.closeAllConnections()
    this.admin?.server.closeAllConnections()
  }
}
