/**
 * `server.workers` above 1 (`auto`: one per core): a primary that supervises, and that many workers,
 * each a whole gateway.
 *
 * - Every worker opens both listeners on the configured addresses; node:cluster shares them (the primary
 *   accepts and hands connections out round-robin), so proxying and forward auth spread over the cores.
 * - The primary runs no listener and no engine. It forks the workers and replaces one that dies, after a
 *   backoff that doubles while replacements keep dying young. It owns the config file: on SIGHUP or a
 *   change of the file it checks the new config once, logs and counts the outcome, and only if the
 *   config is valid sends SIGHUP to every worker, which re-reads the file and swaps it in. On SIGTERM or
 *   SIGINT it sends SIGTERM to every worker and exits 0 once all have drained.
 * - Whichever worker answers `/metrics` or `/readyz` asks the primary over IPC; the primary asks every
 *   worker for its own view and answers for the group: metrics summed with prom-client's
 *   `AggregatorRegistry.aggregate` (plus the primary's own: config reloads, its process metrics), and
 *   readiness with one entry per worker.
 */
import cluster, { type Worker } from 'node:cluster'
import type { Logger } from 'pino'
import { AggregatorRegistry, prometheusContentType } from 'prom-client'
import { ConfigReloader } from '../config/reload.js'
import type { CompiledConfig } from '../config/types.js'
import { watchConfigFile } from '../config/watch.js'
import type { Gateway } from './gateway.js'
import { localReadiness, type Readiness } from '../http/admin-server.js'
import { GatewayMetrics } from '../observability/metrics.js'
import { checkSigningKeys } from '../reissue/signing-keys.js'

/** What a cluster worker's admin listener reports for the whole process group. */
export interface ProcessGroup {
  metrics: () => Promise<{ contentType: string, body: string }>
  readiness: () => Promise<Readiness>
}

/** The environment variable that marks a process as scopegate's worker, and holds its slot number. */
export const WORKER_ENV = 'SCOPEGATE_WORKER_ID'

/** Milliseconds the primary waits for every worker's answer; a worker that misses it is left out. */
const GROUP_TIMEOUT_MS = 2000
/** Replacement backoff, milliseconds: doubled for each worker of a slot that died young, up to the cap. */
const RESPAWN_BASE_MS = 250
const RESPAWN_MAX_MS = 30_000
/** A worker that served this long (milliseconds) was not dying young: the backoff starts over. */
const STABLE_MS = 30_000
/** Milliseconds past server.shutdownTimeout after which a worker that has not exited is killed. */
const EXIT_GRACE_MS = 5000

type Query = 'metrics' | 'readiness'
/** A registry's `getMetricsAsJSON()`, as it crosses IPC. */
type Metrics = object[]

/** IPC between the primary and a worker; `scopegate` tells them from other messages (prom-client's). */
type ToPrimary =
  | { scopegate: 'hello' }
  | { scopegate: 'listening', proxyUrl: string, adminUrl: string }
  | { scopegate: 'ask-group', id: number, query: Query }
  | { scopegate: 'local-answer', id: number, result: unknown }

type ToWorker =
  | { scopegate: 'ask-local', id: number, query: Query }
  | { scopegate: 'group-answer', id: number, result?: unknown, error?: string }

const isMessage = <T extends { scopegate: string }>(value: unknown): value is T =>
  typeof value === 'object' && value !== null && typeof (value as { scopegate?: unknown }).scopegate === 'string'

/* ------------------------------------------------------------------ worker ------------------------------------------------------------------ */

/** A worker's side of the IPC: asks the primary for the group's view, and answers for itself. */
export class WorkerLink implements ProcessGroup {
  private gateway: Gateway | null = null
  private nextId = 0
  private readonly pending = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void, timer: NodeJS.Timeout }>()

  constructor () {
    process.on('message', (message: unknown) => { if (isMessage<ToWorker>(message)) void this.onMessage(message) })
  }

  attach (gateway: Gateway): void {
    this.gateway = gateway
  }

  /** Signal handlers are installed: the primary may send SIGHUP from now on. */
  hello (): void {
    this.send({ scopegate: 'hello' })
  }

  listening (proxyUrl: string, adminUrl: string): void {
    this.send({ scopegate: 'listening', proxyUrl, adminUrl })
  }

  readonly metrics = async (): Promise<{ contentType: string, body: string }> =>
    ({ contentType: prometheusContentType, body: await this.ask('metrics') as string })

  /** Not ready (503) rather than an error when the primary cannot answer for the group. */
  readonly readiness = async (): Promise<Readiness> => {
    try {
      return await this.ask('readiness') as Readiness
    } catch (err) {
      return { ready: false, body: { status: 'not_ready', error: (err as Error).message } }
    }
  }

  private send (message: ToPrimary): void {
    if (process.send !== undefined && process.connected) process.send(message)
  }

  private ask (query: Query): Promise<unknown> {
    if (process.send === undefined || !process.connected) return Promise.reject(new Error('the cluster primary is gone'))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`the cluster primary did not answer ${query} in time`))
      }, GROUP_TIMEOUT_MS + 1000)
      this.pending.set(id, { resolve, reject, timer })
      this.send({ scopegate: 'ask-group', id, query })
    })
  }

  private async onMessage (message: ToWorker): Promise<void> {
    if (message.scopegate === 'group-answer') {
      const waiting = this.pending.get(message.id)
      if (waiting === undefined) return
      this.pending.delete(message.id)
      clearTimeout(waiting.timer)
      if (message.error !== undefined) waiting.reject(new Error(message.error))
      else waiting.resolve(message.result)
      return
    }
    const gateway = this.gateway
    let result: unknown
    if (message.query === 'metrics') {
      result = gateway === null ? [] : await gateway.metrics.registry.getMetricsAsJSON()
    } else {
      const local: Readiness = gateway === null
        ? { ready: false, body: { status: 'starting' } }
        : localReadiness(gateway.current(), gateway.shuttingDown)
      result = local
    }
    this.send({ scopegate: 'local-answer', id: message.id, result })
  }
}

/* ------------------------------------------------------------------ primary ------------------------------------------------------------------ */

interface Slot {
  id: number
  worker: Worker | null
  /** The worker has installed its signal handlers. */
  hello: boolean
  /** A reload happened before hello: send SIGHUP once it comes. */
  reloadOnHello: boolean
  listening: boolean
  startedAt: number
  /** Consecutive workers of this slot that died before serving STABLE_MS. */
  youngDeaths: number
  respawn: NodeJS.Timeout | null
}

export interface PrimaryOptions {
  file: string
  config: CompiledConfig
  logger: Logger
}

/** Runs the primary until SIGTERM or SIGINT (or a failed start), then exits the process. */
export function runPrimary (options: PrimaryOptions): void {
  const { file, logger } = options
  let current = options.config
  const metrics = new GatewayMetrics(() => null)
  const slots: Slot[] = Array.from({ length: current.server.workers }, (_, i) => ({
    id: i + 1, worker: null, hello: false, reloadOnHello: false, listening: false, startedAt: 0, youngDeaths: 0, respawn: null
  }))
  let shuttingDown = false
  let everListening = false
  let nextQueryId = 0
  const queries = new Map<number, (slot: Slot, result: unknown) => void>()

  const live = (): Slot[] => slots.filter((slot) => slot.worker !== null && slot.worker.isConnected())

  /** Every connected worker's own answer to `query`; those that miss GROUP_TIMEOUT_MS are left out. */
  const askWorkers = (query: Query): Promise<Array<{ slot: Slot, result: unknown }>> => {
    const targets = live()
    const id = nextQueryId++
    const answers: Array<{ slot: Slot, result: unknown }> = []
    return new Promise((resolve) => {
      const finish = (): void => { clearTimeout(timer); queries.delete(id); resolve(answers) }
      const timer = setTimeout(finish, GROUP_TIMEOUT_MS)
      queries.set(id, (slot, result) => {
        answers.push({ slot, result })
        if (answers.length === targets.length) finish()
      })
      if (targets.length === 0) finish()
      for (const slot of targets) slot.worker?.send({ scopegate: 'ask-local', id, query } satisfies ToWorker)
    })
  }

  const groupMetrics = async (): Promise<string> => {
    const parts = (await askWorkers('metrics')).map((answer) => answer.result as Metrics)
    parts.push(await metrics.registry.getMetricsAsJSON())
    return await AggregatorRegistry.aggregate(parts).metrics()
  }

  const groupReadiness = async (): Promise<Readiness> => {
    const answers = await askWorkers('readiness')
    const serving = answers.filter((answer) => answer.slot.listening)
    const ready = !shuttingDown && serving.length > 0 && serving.every((answer) => (answer.result as Readiness).ready)
    return {
      ready,
      body: {
        status: shuttingDown ? 'shutting_down' : ready ? 'ready' : 'not_ready',
        config: current.source,
        workers: { configured: slots.length, serving: slots.filter((slot) => slot.listening).length },
        processes: answers.map(({ slot, result }) => ({
          worker: slot.id,
          pid: slot.worker?.process.pid,
          serving: slot.listening,
          ...(result as Readiness).body
        }))
      }
    }
  }

  const onMessage = (slot: Slot, worker: Worker, message: ToPrimary): void => {
    switch (message.scopegate) {
      case 'hello':
        slot.hello = true
        if (slot.reloadOnHello) {
          slot.reloadOnHello = false
          worker.process.kill('SIGHUP')
        }
        return
      case 'listening':
        slot.listening = true
        if (!everListening && slots.every((s) => s.listening)) {
          everListening = true
          logger.info({ proxy: message.proxyUrl, admin: message.adminUrl, config: file, workers: slots.length }, 'scopegate listening')
        } else if (everListening) {
          logger.info({ worker: slot.id, pid: worker.process.pid }, 'replacement worker listening')
        }
        return
      case 'local-answer':
        queries.get(message.id)?.(slot, message.result)
        return
      case 'ask-group': {
        const answer = message.query === 'metrics' ? groupMetrics() : groupReadiness()
        answer.then((result) => {
          if (worker.isConnected()) worker.send({ scopegate: 'group-answer', id: message.id, result } satisfies ToWorker)
        }, (err: unknown) => {
          if (worker.isConnected()) worker.send({ scopegate: 'group-answer', id: message.id, error: (err as Error).message } satisfies ToWorker)
        })
      }
    }
  }

  const fork = (slot: Slot): void => {
    slot.respawn = null
    slot.hello = false
    slot.reloadOnHello = false
    slot.listening = false
    slot.startedAt = Date.now()
    const worker = cluster.fork({ [WORKER_ENV]: String(slot.id) })
    slot.worker = worker
    worker.on('message', (message: unknown) => { if (isMessage<ToPrimary>(message)) onMessage(slot, worker, message) })
    worker.on('exit', (code, signal) => { onExit(slot, worker, code, signal) })
  }

  const exits: Array<{ code: number | null, signal: string | null }> = []
  let allExited: (() => void) | null = null

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    if (slot.worker === worker) slot.worker = null
    const served = slot.listening
    slot.listening = false
    if (shuttingDown) {
      exits.push({ code, signal })
      if (slots.every((s) => s.worker === null)) allExited?.()
      return
    }
    if (!everListening) {
      logger.fatal({ worker: slot.id, pid: worker.process.pid, code, signal }, 'a worker failed to start; stopping')
      void shutdown('startup failure', 1)
      return
    }
    slot.youngDeaths = served && Date.now() - slot.startedAt >= STABLE_MS ? 0 : slot.youngDeaths + 1
    const delay = Math.min(RESPAWN_MAX_MS, RESPAWN_BASE_MS * 2 ** Math.max(0, slot.youngDeaths - 1))
    logger.error({ worker: slot.id, pid: worker.process.pid, code, signal, restartInMs: delay }, 'worker exited; replacing it')
    slot.respawn = setTimeout(() => { fork(slot) }, delay)
  }

  // The re-issue key files are checked here, so a config whose keys are unusable is refused once, like any
  // other invalid config, instead of by every worker.
  const reloader = new ConfigReloader({
    file,
    logger,
    current: () => current,
    check: checkSigningKeys,
    apply: (config) => {
      if (config.server.logLevel !== current.server.logLevel) logger.level = config.server.logLevel
      current = config
      for (const slot of slots) {
        if (slot.worker === null) continue
        if (slot.hello) slot.worker.process.kill('SIGHUP')
        else slot.reloadOnHello = true
      }
      return true
    },
    count: (result) => { metrics.reloaded(result) }
  })
  const watcher = watchConfigFile(file, () => { void reloader.reload('file') })

  const shutdown = async (reason: string, failure = 0): Promise<void> => {
    if (shuttingDown) return
    shuttingDown = true
    watcher.close()
    logger.info({ reason, workers: live().length }, 'shutting down: draining every worker')
    for (const slot of slots) {
      if (slot.respawn !== null) clearTimeout(slot.respawn)
      slot.respawn = null
    }
    const waiting = slots.filter((slot) => slot.worker !== null)
    const done = new Promise<void>((resolve) => { allExited = resolve })
    for (const slot of waiting) slot.worker?.process.kill('SIGTERM')
    if (waiting.length === 0) allExited?.()
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), current.server.shutdownTimeoutMs + EXIT_GRACE_MS) })
    if (await Promise.race([done.then(() => false), expired])) {
      for (const slot of slots) {
        if (slot.worker === null) continue
        logger.error({ worker: slot.id, pid: slot.worker.process.pid }, 'worker did not exit in time; killing it')
        exits.push({ code: null, signal: 'SIGKILL' })
        slot.worker.process.kill('SIGKILL')
      }
    }
    clearTimeout(timer)
    // A worker stopped by SIGTERM before its handlers were installed was not serving anything yet.
    const clean = exits.every((exit) => exit.code === 0 || exit.signal === 'SIGTERM')
    const code = failure !== 0 ? failure : clean ? 0 : 1
    logger.info({ code }, 'scopegate stopped')
    process.exit(code)
  }

  process.on('SIGHUP', () => {
    watcher.acknowledge()
    void reloader.reload('SIGHUP')
  })
  // `on`, not `once`: a second signal must not fall back to the default action and orphan the workers.
  process.on('SIGTERM', () => { void shutdown('SIGTERM') })
  process.on('SIGINT', () => { void shutdown('SIGINT') })

  logger.info({ workers: slots.length, config: file }, 'starting workers')
  for (const slot of slots) fork(slot)
}
