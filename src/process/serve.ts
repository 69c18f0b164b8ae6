/**
 * `scopegate serve`: one process, or a cluster primary and its workers (`server.workers` above 1).
 *
 * Signals (contract §3): SIGHUP reloads the config, as does a change of the file; SIGTERM and SIGINT
 * shut down gracefully (see `Gateway.close`) and exit 0. In a cluster the primary takes them and passes
 * them on (see `cluster.ts`); a worker handles the same signals for itself.
 */
import cluster from 'node:cluster'
import type { Logger } from 'pino'
import { WORKER_ENV, WorkerLink, runPrimary } from './cluster.js'
import { ConfigError } from '../config/problems.js'
import { ConfigReloader } from '../config/reload.js'
import type { CompiledConfig } from '../config/types.js'
import { watchConfigFile } from '../config/watch.js'
import { Gateway, type GatewayAddresses } from './gateway.js'
import { createLogger } from '../observability/logger.js'

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

async function runSingle (file: string, config: CompiledConfig): Promise<void> {
  const logger = processLogger(config)
  const gateway = new Gateway({ config, logger })
  const reloader = new ConfigReloader({
    file,
    logger,
    current: () => gateway.current().config,
    apply: async (next) => await gateway.reload(next),
    count: (result) => { gateway.metrics.reloaded(result) }
  })
  const watcher = watchConfigFile(file, () => { void reloader.reload('file') })
  process.on('SIGHUP', () => {
    watcher.acknowledge()
    void reloader.reload('SIGHUP')
  })
  exitOnStop(logger, async () => {
    watcher.close()
    await gateway.close()
  })
  const { proxyUrl, adminUrl } = await startOrExit(gateway, logger)
  logger.info({ proxy: proxyUrl, admin: adminUrl, config: file, workers: 1 }, 'scopegate listening')
}

async function runWorker (file: string, config: CompiledConfig, slot: string): Promise<void> {
  const logger = processLogger(config).child({ worker: Number(slot), pid: process.pid })
  const link = new WorkerLink()
  const gateway = new Gateway({ config, logger, group: link })
  link.attach(gateway)
  // The primary has checked the file, counted the reload and warned about restart-only settings.
  const reloader = new ConfigReloader({
    file,
    logger,
    current: () => gateway.current().config,
    apply: async (next) => await gateway.reload(next),
    warnRestart: false
  })
  process.on('SIGHUP', () => { void reloader.reload('SIGHUP') })
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
