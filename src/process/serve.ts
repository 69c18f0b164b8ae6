/**
 * `scopegate serve`: one process, or a cluster primary and its workers (`server.workers` above 1).
 *
 * Signals (docs/operations.md): SIGHUP reloads the config, as does a change of the file; SIGTERM and
 * SIGINT shut down gracefully (see `Gateway.close`) and exit 0. In a cluster the primary takes them and
 * passes them on (see `cluster.ts`); a worker handles the same signals for itself.
 */
import cluster from 'node:cluster'
import type { Logger } from 'pino'
import { ConfigError } from '../config/problems.js'
import type { ReloaderOptions } from '../config/reload.js'
import type { CompiledConfig } from '../config/types.js'
import { localReadiness } from '../http/admin-server.js'
import { createLogger } from '../observability/logger.js'
import type { ReloadResult } from '../observability/metrics.js'
import { runPrimary } from './cluster.js'
import { WORKER_ENV } from './cluster-ipc.js'
import { Gateway, type GatewayAddresses } from './gateway.js'
import { reloadOnTriggers } from './reload-triggers.js'
import { WorkerKeyFetch } from './worker-key-fetch.js'
import { WorkerLink } from './worker-link.js'

function processLogger (config: CompiledConfig): Logger {
  // SCOPEGATE_LOG_FORMAT=pretty: human-readable lines (needs pino-pretty, a devDependency; JSON without it).
  return createLogger({ level: config.server.logLevel, pretty: process.env.SCOPEGATE_LOG_FORMAT === 'pretty' })
}

/** Installs SIGTERM and SIGINT: close gracefully, then exit 0. Idempotent, so a second signal changes nothing. */
function exitOnStop (logger: Logger, close: () => Promise<void>): void {
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down: draining requests in flight')
    void close().then(() => {
      logger.info('scopegate stopped')
      process.exit(0)
    })
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })
  // A worker whose primary is gone stops too, rather than hold the ports as an orphan.
  if (cluster.isWorker) process.on('disconnect', () => { stop('primary disconnected') })
}

/** A gateway that cannot start (a port in use, an unreadable key file) ends the process with exit code 1. */
async function startOrExit (gateway: Gateway, logger: Logger): Promise<GatewayAddresses> {
  try {
    return await gateway.start()
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : undefined
    logger.fatal({ err: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code }, problems }, 'cannot start')
    await gateway.close()
    process.exit(1)
  }
}

/** How a reload reaches a gateway: `reload` swaps the checked config in. */
function gatewayReload (file: string, logger: Logger, gateway: Gateway): ReloaderOptions {
  return { file, logger, current: () => gateway.current().config, apply: async (next) => await gateway.reload(next) }
}

async function runSingle (file: string, config: CompiledConfig): Promise<void> {
  const logger = processLogger(config)
  const gateway = new Gateway({ config, logger })
  const count = (result: ReloadResult): void => { gateway.metrics.reloaded(result) }
  const triggers = reloadOnTriggers({ ...gatewayReload(file, logger, gateway), count }, true)
  exitOnStop(logger, async () => {
    triggers.close()
    await gateway.close()
  })
  const { proxyUrl, adminUrl, extAuthzAddress } = await startOrExit(gateway, logger)
  logger.info({ proxy: proxyUrl, admin: adminUrl, ...(extAuthzAddress === undefined ? {} : { extAuthz: extAuthzAddress }), config: file, workers: 1 }, 'scopegate listening')
}

async function runWorker (file: string, config: CompiledConfig, slot: string): Promise<void> {
  const logger = processLogger(config).child({ worker: Number(slot), pid: process.pid })
  const link = new WorkerLink()
  const keyFetch = new WorkerKeyFetch({
    onFallback: (url, reason) => { logger.warn({ url, reason }, 'fetching keys directly: the cluster primary did not take the fetch on') }
  })
  const gateway = new Gateway({ config, logger, group: link, worker: Number(slot), fetchFor: keyFetch.fetchFor })
  link.attach({
    metrics: () => gateway.metrics.registry.getMetricsAsJSON(),
    readiness: () => localReadiness(gateway.current(), gateway.shuttingDown, gateway.redisConnected(), gateway.extAuthz?.listening),
    status: () => gateway.statusSnapshot()
  })
  link.relayDenials(gateway.denials, () => gateway.current().config.server.statusPage !== null)
  // SIGHUP only, from the primary, which has checked the file, counted the reload and warned about
  // restart-only settings.
  reloadOnTriggers({ ...gatewayReload(file, logger, gateway), warnRestart: false }, false)
  exitOnStop(logger, () => gateway.close())
  link.hello()
  const { proxyUrl, adminUrl } = await startOrExit(gateway, logger)
  link.listening(proxyUrl, adminUrl)
  logger.info({ proxy: proxyUrl, admin: adminUrl }, 'worker listening')
}

/** Runs `serve` on an already loaded config. The process keeps running; it exits from its signal handlers. */
export async function runServe (file: string, config: CompiledConfig): Promise<void> {
  const slot = process.env[WORKER_ENV]
  if (cluster.isWorker && slot !== undefined) return runWorker(file, config, slot)
  if (config.server.workers > 1) return runPrimary({ file, config, logger: processLogger(config).child({ worker: 'primary', pid: process.pid }) })
  return runSingle(file, config)
}
