/**
 * The status page of a process group (`server.workers > 1`): the primary asks every worker for its
 * snapshot and merges them here. Workers share the config, so the routes are the first worker's; each
 * worker holds its own keys and caches, so issuers show the worst state any worker is in (and every kid
 * one holds; the introspection endpoint's worst state too), caches show the sum, and denials are merged by time.
 */
import type { ReasonCount } from './denial-feed.js'
import type { CacheView, IssuerView, StatusSnapshot } from './status-snapshot.js'

const STATE_RANK: Readonly<Record<IssuerView['state'], number>> = { ready: 0, starting: 1, stale: 2, unavailable: 3 }

/** Introspection states, better to worse: the group shows the worst any worker is in. */
const INTROSPECTION_RANK: Readonly<Record<string, number>> = { unknown: 0, ok: 1, failing: 2, unavailable: 3 }

type IntrospectionView = IssuerView['introspection']

function worseIntrospection (a: IntrospectionView, b: IntrospectionView): IntrospectionView {
  if (a === null || b === null) return a ?? b
  return (INTROSPECTION_RANK[b.state] ?? 0) > (INTROSPECTION_RANK[a.state] ?? 0) ? b : a
}

const max = (a: number | null, b: number | null): number | null => a === null ? b : b === null ? a : Math.max(a, b)

function mergeIssuer (a: IssuerView, b: IssuerView): IssuerView {
  const [worse, better] = STATE_RANK[b.state] > STATE_RANK[a.state] ? [b, a] : [a, b]
  return {
    ...worse,
    jwksUri: worse.jwksUri ?? better.jwksUri,
    kids: [...new Set([...a.kids, ...b.kids])],
    ageSeconds: max(a.ageSeconds, b.ageSeconds),
    failingForSeconds: max(a.failingForSeconds, b.failingForSeconds),
    lastError: worse.lastError ?? better.lastError,
    introspection: worseIntrospection(a.introspection, b.introspection)
  }
}

function mergeCache (a: CacheView, b: CacheView): CacheView {
  const sum = (x: number | null, y: number | null): number | null => x === null || y === null ? null : x + y
  return { name: a.name, entries: a.entries + b.entries, hits: sum(a.hits, b.hits), misses: sum(a.misses, b.misses) }
}

/** Merges `next` into the map under its key with `merge`, or adds it. */
function fold<T> (into: Map<string, T>, key: string, next: T, merge: (a: T, b: T) => T): void {
  const held = into.get(key)
  into.set(key, held === undefined ? next : merge(held, next))
}

/** One snapshot for the group; `recentLimit` denials at most. Null when no worker answered. */
export function mergeSnapshots (parts: readonly StatusSnapshot[], recentLimit: number): StatusSnapshot | null {
  const ordered = [...parts].sort((a, b) => (a.processes[0]?.worker ?? 0) - (b.processes[0]?.worker ?? 0))
  const first = ordered[0]
  if (first === undefined) return null
  const issuers = new Map<string, IssuerView>()
  const caches = new Map<string, CacheView>()
  const reasons = new Map<string, ReasonCount>()
  for (const part of ordered) {
    for (const issuer of part.issuers) fold(issuers, issuer.id, issuer, mergeIssuer)
    for (const cache of part.caches) fold(caches, cache.name, cache, mergeCache)
    for (const count of part.denials.reasons) {
      fold(reasons, count.reason, count, (a, b) => ({ reason: a.reason, total: a.total + b.total, recent: a.recent + b.recent }))
    }
  }
  const redis = ordered.some((part) => part.redis === 'disconnected') ? 'disconnected' : first.redis
  return {
    ...first,
    takenAt: Math.max(...ordered.map((part) => part.takenAt)),
    processes: ordered.flatMap((part) => part.processes),
    issuers: [...issuers.values()],
    caches: [...caches.values()],
    redis,
    denials: {
      recent: ordered.flatMap((part) => part.denials.recent).sort((a, b) => b.at - a.at).slice(0, recentLimit),
      reasons: [...reasons.values()].sort((a, b) => b.recent - a.recent || b.total - a.total || a.reason.localeCompare(b.reason))
    }
  }
}
