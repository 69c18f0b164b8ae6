/**
 * What a cluster primary answers for the whole process group when a worker's admin listener asks (see
 * `cluster.ts`): it asks every worker for its own view, waits GROUP_TIMEOUT_MS at most, and combines the
 * answers. Metrics are summed with prom-client's `AggregatorRegistry.aggregate`, the primary's own
 * registry (config reloads, its process metrics) included; readiness has one entry per worker; the
 * status page's snapshots are merged by `status-merge.ts`. Denials a worker reports for the live status
 * feeds are relayed to every other worker.
 */
import type { Worker } from 'node:cluster'
import { AggregatorRegistry } from 'prom-client'
import type { CompiledConfig } from '../config/types.js'
import type { Readiness } from '../http/admin-server.js'
import type { GatewayMetrics } from '../observability/metrics.js'
import { mergeSnapshots } from '../observability/status-merge.js'
import type { StatusSnapshot } from '../observability/status-snapshot.js'
import { GROUP_TIMEOUT_MS, type Metrics, type Query, type ToPrimary, type ToWorker } from './cluster-ipc.js'
import type { Slot, WorkerPool } from './worker-pool.js'

export interface GroupViewOptions {
  pool: WorkerPool
  /** The primary's own registry. */
  metrics: GatewayMetrics
  /** The config in force, for the source it names. */
  config: () => CompiledConfig
  stopping: () => boolean
}

interface Answer {
  slot: Slot
  result: unknown
}

export class GroupView {
  private readonly options: GroupViewOptions
  private nextId = 0
  private readonly waiting = new Map<number, (slot: Slot, result: unknown) => void>()

  constructor (options: GroupViewOptions) {
    this.options = options
  }

  /** A worker's question about the group, or its answer to one of the primary's. */
  onMessage (slot: Slot, worker: Worker, message: ToPrimary): void {
    if (message.scopegate === 'local-answer') {
      this.waiting.get(message.id)?.(slot, message.result)
    } else if (message.scopegate === 'denials') {
      for (const other of this.options.pool.live()) {
        if (other !== slot && other.worker?.isConnected() === true) other.worker.send({ scopegate: 'denials', entries: message.entries } satisfies ToWorker)
      }
    } else if (message.scopegate === 'ask-group') {
      const answer = message.query === 'metrics' ? this.metrics() : message.query === 'status' ? this.status() : this.readiness()
      const reply = (fields: { result?: unknown, error?: string }): void => {
        if (worker.isConnected()) worker.send({ scopegate: 'group-answer', id: message.id, ...fields } satisfies ToWorker)
      }
      answer.then((result) => { reply({ result }) }, (err: unknown) => { reply({ error: (err as Error).message }) })
    }
  }

  /** The group's metrics, in the Prometheus text exposition. */
  async metrics (): Promise<string> {
    const parts = (await this.askWorkers('metrics')).map((answer) => answer.result as Metrics)
    parts.push(await this.options.metrics.registry.getMetricsAsJSON())
    return await AggregatorRegistry.aggregate(parts).metrics()
  }

  /** The status page's snapshot for the group: every worker's, merged. */
  async status (): Promise<StatusSnapshot> {
    const parts = (await this.askWorkers('status')).map((answer) => answer.result as StatusSnapshot | null).filter((part) => part !== null)
    const merged = mergeSnapshots(parts, this.options.config().server.statusPage?.recentDenials ?? 50)
    if (merged === null) throw new Error('no worker answered for the status page')
    return merged
  }

  /** Ready when not stopping and every listening worker is ready. */
  async readiness (): Promise<Readiness> {
    const { pool, stopping } = this.options
    const answers = await this.askWorkers('readiness')
    const serving = answers.filter((answer) => answer.slot.listening)
    const ready = !stopping() && serving.length > 0 && serving.every((answer) => (answer.result as Readiness).ready)
    return {
      ready,
      body: {
        status: stopping() ? 'shutting_down' : ready ? 'ready' : 'not_ready',
        config: this.options.config().source,
        workers: { configured: pool.slots.length, serving: pool.serving() },
        processes: answers.map(({ slot, result }) => ({
          worker: slot.id,
          pid: slot.worker?.process.pid,
          serving: slot.listening,
          ...(result as Readiness).body
        }))
      }
    }
  }

  /** Every connected worker's own answer to `query`; those that miss GROUP_TIMEOUT_MS are left out. */
  private askWorkers (query: Query): Promise<Answer[]> {
    const targets = this.options.pool.live()
    const id = this.nextId++
    const answers: Answer[] = []
    return new Promise((resolve) => {
      const finish = (): void => { clearTimeout(timer); this.waiting.delete(id); resolve(answers) }
      const timer = setTimeout(finish, GROUP_TIMEOUT_MS)
      this.waiting.set(id, (slot, result) => {
        answers.push({ slot, result })
        if (answers.length === targets.length) finish()
      })
      if (targets.length === 0) finish()
      for (const slot of targets) slot.worker?.send({ scopegate: 'ask-local', id, query } satisfies ToWorker)
    })
  }
}
