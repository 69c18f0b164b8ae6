/**
 * The denials the status page shows (docs/observability.md#status-page): the last N, counts by reason
 * since start and over the last five minutes, and a live feed for `/status/events`. It is a decision
 * listener (see `http/decision-log.ts`), so it sees what the decision log writes and nothing more: the
 * record never holds a token or an Authorization value. What it keeps is trimmed further, since a page
 * is easier to leak than a log: no query string (the record's path is the normalized path without one),
 * JWT-shaped and long opaque runs in the path masked, every string cut to a bounded length.
 */
import type { DecisionRecord } from '../http/decision-log.js'

/** One denial as the page shows it; plain data, so it crosses the cluster's IPC unchanged. */
export interface DenialEntry {
  /** Milliseconds since the epoch. */
  at: number
  route: string | null
  method: string | null
  /** The normalized path, never the query; tokens in it masked. */
  path: string | null
  reason: string
  status: number
  /** `audit_deny`: denied by the policy, forwarded anyway (audit mode). */
  decision: 'deny' | 'audit_deny'
  clientId: string | null
  subject: string | null
  /** The cluster worker that decided; null in a single process. */
  worker: number | null
}

export interface ReasonCount {
  reason: string
  total: number
  /** Within the last WINDOW_MS. */
  recent: number
}

/** Milliseconds the "recent" counts cover, and the width of one of their buckets. */
export const WINDOW_MS = 5 * 60_000
const BUCKET_MS = 10_000
const BUCKETS = WINDOW_MS / BUCKET_MS

/** Longest path, client id or subject kept, in characters: the rest is cut, with an ellipsis. */
const MAX_TEXT = 200
/** A JWT (three base64url runs joined by dots), or a base64url run long enough to be an opaque token. */
const TOKEN_LIKE = /[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|[A-Za-z0-9_~+=-]{40,}/g

function clip (text: string | null): string | null {
  if (text === null) return null
  return text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) + '…' : text
}

/** The path as the page may show it: tokens masked, then cut. */
export function maskPath (path: string | null): string | null {
  return path === null ? null : clip(path.replace(TOKEN_LIKE, '[redacted]'))
}

export interface DenialFeedOptions {
  /** Denials kept (the newest). */
  size: number
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number
  /** The cluster worker this process is; null in a single process. */
  worker?: number | null
}

export type DenialSubscriber = (entry: DenialEntry) => void

export class DenialFeed {
  private size: number
  private readonly now: () => number
  private readonly worker: number | null
  /** A ring of the newest `size` denials: `next` is where the next one goes (and the oldest is, once full). */
  private recent: Array<DenialEntry | undefined>
  private next = 0
  private readonly totals = new Map<string, number>()
  /** Ring of per-bucket counts over WINDOW_MS, indexed by bucket number modulo BUCKETS. */
  private readonly buckets = Array.from({ length: BUCKETS }, () => ({ bucket: Number.NEGATIVE_INFINITY, counts: new Map<string, number>() }))
  private readonly subscribers = new Set<DenialSubscriber>()
  /** Told of each denial made here (the cluster relay sends them to the other workers). */
  onLocal: DenialSubscriber | null = null

  constructor (options: DenialFeedOptions) {
    this.size = options.size
    this.recent = new Array<DenialEntry | undefined>(options.size)
    this.now = options.now ?? Date.now
    this.worker = options.worker ?? null
  }

  /** A decision listener: keeps and publishes denials, ignores allows. */
  readonly onDecision = (record: DecisionRecord): void => {
    if (record.decision === 'allow') return
    const entry: DenialEntry = {
      at: this.now(),
      route: record.route,
      method: record.method,
      path: maskPath(record.path),
      reason: record.reason,
      status: record.status,
      decision: record.decision,
      clientId: clip(record.clientId),
      subject: clip(record.sub),
      worker: this.worker
    }
    this.keep(entry)
    this.publish(entry)
    this.onLocal?.(entry)
  }

  /** A new size (a reload changed `recentDenials`): the oldest beyond it are dropped. */
  resize (size: number): void {
    if (size === this.size) return
    const kept = this.latest().slice(0, size).reverse()
    this.size = size
    this.recent = new Array<DenialEntry | undefined>(size)
    kept.forEach((entry, i) => { this.recent[i] = entry })
    this.next = kept.length % size
  }

  /** Hands `entry` to every live feed; denials of other workers come in here. */
  publish (entry: DenialEntry): void {
    for (const subscriber of this.subscribers) subscriber(entry)
  }

  /** Adds a live feed; returns the function that removes it. */
  subscribe (subscriber: DenialSubscriber): () => void {
    this.subscribers.add(subscriber)
    return () => { this.subscribers.delete(subscriber) }
  }

  /** The denials kept, newest first. */
  latest (): DenialEntry[] {
    const newestFirst: DenialEntry[] = []
    for (let i = 1; i <= this.size; i++) {
      const entry = this.recent[(this.next - i + this.size) % this.size]
      if (entry === undefined) break
      newestFirst.push(entry)
    }
    return newestFirst
  }

  /** Counts by reason, the most frequent over the last five minutes first, then since start. */
  counts (): ReasonCount[] {
    const recent = new Map<string, number>()
    const oldest = Math.floor(this.now() / BUCKET_MS) - BUCKETS + 1
    for (const { bucket, counts } of this.buckets) {
      if (bucket < oldest) continue
      for (const [reason, n] of counts) recent.set(reason, (recent.get(reason) ?? 0) + n)
    }
    return [...this.totals].map(([reason, total]) => ({ reason, total, recent: recent.get(reason) ?? 0 }))
      .sort((a, b) => b.recent - a.recent || b.total - a.total || a.reason.localeCompare(b.reason))
  }

  private keep (entry: DenialEntry): void {
    this.recent[this.next] = entry
    this.next = (this.next + 1) % this.size
    this.totals.set(entry.reason, (this.totals.get(entry.reason) ?? 0) + 1)
    const bucket = Math.floor(entry.at / BUCKET_MS)
    const slot = bucket % BUCKETS
    let held = this.buckets[slot] as { bucket: number, counts: Map<string, number> }
    if (held.bucket !== bucket) this.buckets[slot] = held = { bucket, counts: new Map() }
    held.counts.set(entry.reason, (held.counts.get(entry.reason) ?? 0) + 1)
  }
}
