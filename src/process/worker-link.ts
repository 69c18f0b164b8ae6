/**
 * A cluster worker's side of the IPC with its primary (see `cluster.ts`): it tells the primary when it
 * is ready for signals and when it listens, asks it for the group's metrics, readiness and status page
 * (which the worker's admin listener serves), answers the primary's questions about this worker alone,
 * and relays denials both ways for the live status feeds.
 */
import { prometheusContentType } from 'prom-client'
import type { Readiness } from '../http/admin-server.js'
import type { DenialEntry, DenialFeed } from '../observability/denial-feed.js'
import type { StatusSnapshot } from '../observability/status-snapshot.js'
import { GROUP_TIMEOUT_MS, isMessage, type Metrics, type Query, type ToPrimary, type ToWorker } from './cluster-ipc.js'
import type { ProcessGroup } from './gateway.js'

/** What this worker reports about itself when the primary asks. */
export interface LocalView {
  metrics: () => Promise<Metrics>
  readiness: () => Readiness
  status: () => StatusSnapshot
}

/** Milliseconds denials are gathered before they go to the primary in one message. */
const RELAY_EVERY_MS = 250
/** Most denials in one relayed message: the newest are kept, like the page keeps them. */
const RELAY_MAX = 200

/** Milliseconds a worker waits for the primary's answer: the primary's own wait, and a margin. */
const ASK_TIMEOUT_MS = GROUP_TIMEOUT_MS + 1000

export class WorkerLink implements ProcessGroup {
  private local: LocalView | null = null
  private nextId = 0
  private readonly pending = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void, timer: NodeJS.Timeout }>()
  private feed: DenialFeed | null = null
  private outgoing: DenialEntry[] = []
  private relayTimer: NodeJS.Timeout | null = null

  constructor () {
    process.on('message', (message: unknown) => { if (isMessage<ToWorker>(message)) void this.onMessage(message) })
  }

  /** What to answer for this worker; until then it reports no metrics and `starting`. */
  attach (local: LocalView): void {
    this.local = local
  }

  /**
   * Relays this worker's denials to the others (through the primary) while `enabled` says the status page
   * is on, and hands theirs to `feed`'s live subscribers. Batched: one message per RELAY_EVERY_MS at most.
   */
  relayDenials (feed: DenialFeed, enabled: () => boolean): void {
    this.feed = feed
    feed.onLocal = (entry) => {
      if (!enabled()) return
      this.outgoing.push(entry)
      if (this.outgoing.length > RELAY_MAX) this.outgoing.shift()
      this.relayTimer ??= setTimeout(() => {
        this.relayTimer = null
        const entries = this.outgoing
        this.outgoing = []
        this.send({ scopegate: 'denials', entries })
      }, RELAY_EVERY_MS).unref()
    }
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

  readonly status = async (): Promise<StatusSnapshot> => await this.ask('status') as StatusSnapshot

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
    if (message.scopegate === 'denials') {
      for (const entry of message.entries) this.feed?.publish(entry)
      return
    }
    // Key fetch answers are `worker-key-fetch.ts`'s.
    if (message.scopegate !== 'ask-local') return
    const local = this.local
    const result = message.query === 'metrics'
      ? local === null ? [] : await local.metrics()
      : message.query === 'status'
        ? local?.status() ?? null
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
