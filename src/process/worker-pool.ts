/**
 * A cluster primary's workers (see `cluster.ts`): one slot per configured worker, each holding its
 * current process.
 *
 * - A worker that dies is replaced after a backoff that doubles while replacements of its slot keep
 *   dying young. One that dies before the group ever listened (a port in use, say) stops the group.
 * - SIGHUP reaches a worker only once it has installed its handlers (its `hello`); a reload asked for
 *   before that is sent on hello, since the default action of SIGHUP would kill it.
 * - Stopping sends SIGTERM to every worker and waits for all to exit, killing those left at the deadline.
 *
 * Lines about a worker name it as `workerId` and `workerPid`: the primary's own lines already carry
 * `worker` (`primary`) and `pid` (its own).
 */
import cluster, { type Worker } from 'node:cluster'
import type { Logger } from 'pino'
import { WORKER_ENV, isMessage, type ToPrimary } from './cluster-ipc.js'

/** Replacement backoff, milliseconds: doubled for each worker of a slot that died young, up to the cap. */
const RESPAWN_BASE_MS = 250
const RESPAWN_MAX_MS = 30_000
/** A worker that served this long (milliseconds) was not dying young: the backoff starts over. */
const STABLE_MS = 30_000

export interface Slot {
  /** 1 to the number of workers; the worker's `worker` in its log lines. */
  readonly id: number
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

export interface PoolEvents {
  /** Every worker has listened once: the group is up. */
  listening: (addresses: { proxyUrl: string, adminUrl: string }) => void
  /** A worker died before the group ever listened. Logged already. */
  startFailed: () => void
  /** A message that is not about the worker's own life (the group queries, see `group-view.ts`). */
  message: (slot: Slot, worker: Worker, message: ToPrimary) => void
}

export class WorkerPool {
  readonly slots: readonly Slot[]
  private readonly logger: Logger
  private readonly events: PoolEvents
  private everListening = false
  private stopping = false
  private allExited: (() => void) | null = null

  constructor (count: number, logger: Logger, events: PoolEvents) {
    this.logger = logger
    this.events = events
    this.slots = Array.from({ length: count }, (_, i) => ({
      id: i + 1, worker: null, hello: false, reloadOnHello: false, listening: false, startedAt: 0, youngDeaths: 0, respawn: null
    }))
  }

  start (): void {
    for (const slot of this.slots) this.fork(slot)
  }

  /** The slots whose worker is alive and connected. */
  live (): Slot[] {
    return this.slots.filter((slot) => slot.worker !== null && slot.worker.isConnected())
  }

  /** How many workers listen now. */
  serving (): number {
    return this.slots.filter((slot) => slot.listening).length
  }

  /** Has every worker reload the config: SIGHUP now, or on hello for a worker still starting. */
  reloadAll (): void {
    for (const slot of this.slots) {
      if (slot.worker === null) continue
      if (slot.hello) slot.worker.process.kill('SIGHUP')
      else slot.reloadOnHello = true
    }
  }

  /** SIGTERM to every worker; resolves once all have exited, or at `deadlineMs` (milliseconds) after killing those left. */
  async stop (deadlineMs: number): Promise<void> {
    this.stopping = true
    for (const slot of this.slots) {
      if (slot.respawn !== null) clearTimeout(slot.respawn)
      slot.respawn = null
    }
    const running = this.slots.filter((slot) => slot.worker !== null)
    if (running.length === 0) return
    const exited = new Promise<boolean>((resolve) => { this.allExited = () => resolve(true) })
    for (const slot of running) slot.worker?.process.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), deadlineMs) })
    const allExited = await Promise.race([exited, expired])
    clearTimeout(timer)
    if (allExited) return
    for (const slot of this.slots) {
      if (slot.worker === null) continue
      this.logger.error({ workerId: slot.id, workerPid: slot.worker.process.pid }, 'worker did not exit in time; killing it')
      slot.worker.process.kill('SIGKILL')
    }
  }

  private fork (slot: Slot): void {
    slot.respawn = null
    slot.hello = false
    slot.reloadOnHello = false
    slot.listening = false
    slot.startedAt = Date.now()
    const worker = cluster.fork({ [WORKER_ENV]: String(slot.id) })
    slot.worker = worker
    worker.on('message', (message: unknown) => { if (isMessage<ToPrimary>(message)) this.onMessage(slot, worker, message) })
    worker.on('exit', (code, signal) => { this.onExit(slot, worker, code, signal) })
  }

  private onMessage (slot: Slot, worker: Worker, message: ToPrimary): void {
    if (message.scopegate === 'hello') {
      slot.hello = true
      if (slot.reloadOnHello) {
        slot.reloadOnHello = false
        worker.process.kill('SIGHUP')
      }
    } else if (message.scopegate === 'listening') {
      slot.listening = true
      if (!this.everListening && this.slots.every((s) => s.listening)) {
        this.everListening = true
        this.events.listening({ proxyUrl: message.proxyUrl, adminUrl: message.adminUrl })
      } else if (this.everListening) {
        this.logger.info({ workerId: slot.id, workerPid: worker.process.pid }, 'replacement worker listening')
      }
    } else {
      this.events.message(slot, worker, message)
    }
  }

  private onExit (slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker === worker) slot.worker = null
    const served = slot.listening
    slot.listening = false
    if (this.stopping) {
      if (this.slots.every((s) => s.worker === null)) this.allExited?.()
      return
    }
    const about = { workerId: slot.id, workerPid: worker.process.pid, code, signal }
    if (!this.everListening) {
      this.logger.fatal(about, 'a worker failed to start; stopping')
      this.events.startFailed()
      return
    }
    slot.youngDeaths = served && Date.now() - slot.startedAt >= STABLE_MS ? 0 : slot.youngDeaths + 1
    const delay = Math.min(RESPAWN_MAX_MS, RESPAWN_BASE_MS * 2 ** Math.max(0, slot.youngDeaths - 1))
    this.logger.error({ ...about, restartInMs: delay }, 'worker exited; replacing it')
    slot.respawn = setTimeout(() => { this.fork(slot) }, delay)
  }
}
