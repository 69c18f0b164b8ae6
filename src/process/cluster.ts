/**
 * `server.workers` above 1 (`auto`: one per core): a primary that supervises, and that many workers,
 * each a whole gateway.
 *
 * - Every worker opens both listeners on the configured addresses; node:cluster shares them (the primary
 *   accepts and hands connections out round-robin), so proxying and forward auth spread over the cores.
 * - The primary runs no listener and no engine. It forks the workers and replaces one that dies
 *   (`worker-pool.ts`). It owns the config file: on SIGHUP or a change of the file it checks the new
 *   config once, logs and counts the outcome, and only if the config is valid sends SIGHUP to every
 *   worker, which re-reads the file and swaps it in. On SIGTERM or SIGINT it sends SIGTERM to every
 *   worker and exits 0 once all have drained, or once it has killed those that did not in time.
 * - Whichever worker answers `/metrics` or `/readyz` asks the primary over IPC (`worker-link.ts`); the
 *   primary answers for the group (`group-view.ts`).
 * - Workers fetch issuers' keys through the primary, which makes one fetch for all of them
 *   (`key-fetch-host.ts`, `worker-key-fetch.ts`).
 *
 * The primary's lines carry `worker: "primary"` and its own `pid`; see docs/operations.md.
 */
import type { Logger } from 'pino'
import type { CompiledConfig } from '../config/types.js'
import { applyLogLevel } from '../observability/logger.js'
import { GatewayMetrics } from '../observability/metrics.js'
import { checkSigningKeys } from '../reissue/signing-keys.js'
import { GroupView } from './group-view.js'
import { KeyFetchHost } from './key-fetch-host.js'
import { reloadOnTriggers } from './reload-triggers.js'
import { WorkerPool } from './worker-pool.js'

/** Milliseconds past server.shutdownTimeout after which a worker that has not exited is killed. */
const EXIT_GRACE_MS = 5000

export interface PrimaryOptions {
  file: string
  config: CompiledConfig
  logger: Logger
}

/** Runs the primary until SIGTERM or SIGINT (or a failed start), then exits the process. */
export function runPrimary (options: PrimaryOptions): void {
  const { file, logger } = options
  let current = options.config
  let stopping = false
  const metrics = new GatewayMetrics(() => null)
  // The pool's events reach `view` and `shutdown`, defined below, only once workers run (pool.start()).
  const pool = new WorkerPool(current.server.workers, logger, {
    listening: ({ proxyUrl, adminUrl }) => {
      logger.info({ proxy: proxyUrl, admin: adminUrl, config: file, workers: pool.slots.length }, 'scopegate listening')
    },
    startFailed: () => { void shutdown('startup failure', 1) },
    message: (slot, worker, message) => {
      if (message.scopegate !== 'fetch-keys') view.onMessage(slot, worker, message)
      else keyFetches.serve(message, (reply) => { if (worker.isConnected()) worker.send(reply) })
    }
  })
  // The workers' key fetches, one per URL for the group (key-fetch-host.ts).
  const keyFetches = new KeyFetchHost()
  const view = new GroupView({ pool, metrics, config: () => current, stopping: () => stopping })

  // The re-issue key files are checked here, so a config whose keys are unusable is refused once, like any
  // other invalid config, instead of by every worker.
  const triggers = reloadOnTriggers({
    file,
    logger,
    current: () => current,
    check: checkSigningKeys,
    apply: (config) => {
      applyLogLevel(logger, current.server.logLevel, config.server.logLevel)
      current = config
      pool.reloadAll()
      return true
    },
    count: (result) => { metrics.reloaded(result) }
  }, true)

  /** Exits 0 after a bounded drain (workers still running at the deadline are killed), or `code` on a failed start. */
  const shutdown = async (reason: string, code = 0): Promise<void> => {
    if (stopping) return
    stopping = true
    triggers.close()
    logger.info({ reason, workers: pool.live().length }, 'shutting down: draining every worker')
    await pool.stop(current.server.shutdownTimeoutMs + EXIT_GRACE_MS)
    logger.info({ code }, 'scopegate stopped')
    process.exit(code)
  }
  // `on`, not `once`: a second signal must not fall back to the default action and orphan the workers.
  process.on('SIGTERM', () => { void shutdown('SIGTERM') })
  process.on('SIGINT', () => { void shutdown('SIGINT') })

  logger.info({ workers: pool.slots.length, config: file }, 'starting workers')
  pool.start()
}
