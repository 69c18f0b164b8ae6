/**
 * A cluster worker's side of the IPC with its primary (see `cluster.ts`): it tells the primary when it
 * is ready for signals and when it listens, asks it for the group's metrics and readiness (which the
 * worker's admin listener serves), and answers the primary's questions about this worker alone.
 */
import { prometheusContentType } from 'prom-client'
import type { Readiness } from '../http/admin-server.js'
import { GROUP_TIMEOUT_MS, isMessage, type Metrics, type Query, type ToPrimary, type ToWorker } from './cluster-ipc.js'
import type { ProcessGroup } from './gateway.js'

/** What this worker reports about itself when the primary asks. */
export interface LocalView {
  metrics: () => Promise<Metrics>
  readiness: () => Readiness
}

/** Milliseconds a worker waits for the primary's answer: the primary's own wait, and a margin. */
const ASK_TIMEOUT_MS = GROUP_TIMEOUT_MS + 1000

export class WorkerLink implements ProcessGroup {
  private local: LocalView | null = null
  private nextId = 0
  private readonly pending = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void, timer: NodeJS.Timeout }>()

  constructor () {
    process.on('message', (message: unknown) => { if (isMessage<ToWorker>(message)) void this.onMessage(message) })
  }

  /** What to answer for this worker; until then it reports no metrics and `starting`. */
  attach (local: LocalView): void {
    this.local = local
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
      }, ASK_TIMEOUT_MS)
      this.pending.set(id, { resolve, reject, timer })
      this.send({ scopegate: 'ask-group', id, query })
    })
  }

  private async onMessage (message: ToWorker): Promise<void> {
    if (message.scopegate === 'group-answer') {
      this.settle(message)
      return
    }
    const local = this.local
    const result = message.query === 'metrics'
      ? local === null ? [] : await local.metrics()
      : local === null ? { ready: false, body: { status: 'starting' } } satisfies Readiness : local.readiness()
    this.send({ scopegate: 'local-answer', id: message.id, result })
  }

  private settle (answer: Extract<ToWorker, { scopegate: 'group-answer' }>): void {
    const waiting = this.pending.get(answer.id)
    if (waiting === undefined) return
    this.pending.delete(answer.id)
    clearTimeout(waiting.timer)
    if (answer.error !== undefined) waiting.reject(new Error(answer.error))
    else waiting.resolve(answer.result)
  }
}
