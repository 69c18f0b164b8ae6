/**
 * `scopegate diff`: what a config change does to decisions. Every request (the given cases and the
 * generated ones) is decided under both configs, and each decision that changes is classified:
 * `widened` when access grows (deny→allow, or a scope forwarded that was not before), `narrowed` when
 * it shrinks (allow→deny, or scopes dropped), `changed` otherwise (another code, route or header). A
 * pipeline can then require a second review for exactly the widening changes.
 */
import type { CaseRequest } from './cases-file.js'
import type { CaseRunner, Observed } from './run-cases.js'

export type ChangeKind = 'widened' | 'narrowed' | 'changed'

export interface DecisionChange {
  name: string
  kind: ChangeKind
  before: Observed
  after: Observed
  /** What changed, in a few words: `+delete:todos`, `403 insufficient_scope -> allow`. */
  detail: string
}

function describe (o: Observed): string {
  return o.decision === 'allow' ? `allow [${o.scopes.join(' ')}]` : `${String(o.status)} ${String(o.error)}`
}

/** How `after` differs from `before`, or null when a client and the upstream would see no difference. */
export function classify (before: Observed, after: Observed): { kind: ChangeKind, detail: string } | null {
  if (before.decision !== after.decision) {
    return { kind: after.decision === 'allow' ? 'widened' : 'narrowed', detail: `${describe(before)} -> ${describe(after)}` }
  }
  if (before.decision === 'deny') {
    if (before.status === after.status && before.error === after.error && before.route === after.route) return null
    return { kind: 'changed', detail: `${describe(before)} -> ${describe(after)}` }
  }
  const added = after.scopes.filter((s) => !before.scopes.includes(s))
  const removed = before.scopes.filter((s) => !after.scopes.includes(s))
  if (added.length > 0) return { kind: 'widened', detail: `scopes ${[...added.map((s) => `+${s}`), ...removed.map((s) => `-${s}`)].join(' ')}` }
  if (removed.length > 0) return { kind: 'narrowed', detail: `scopes ${removed.map((s) => `-${s}`).join(' ')}` }
  const names = new Set([...Object.keys(before.headers), ...Object.keys(after.headers)])
  const headers = [...names].filter((n) => before.headers[n] !== after.headers[n]).sort()
  if (headers.length > 0) return { kind: 'changed', detail: `headers ${headers.join(', ')}` }
  if (before.route !== after.route || before.audit !== after.audit) return { kind: 'changed', detail: `route ${String(before.route)} -> ${String(after.route)}${before.audit === after.audit ? '' : `, audit ${String(before.audit)} -> ${String(after.audit)}`}` }
  return null
}

export interface DiffRequest {
  name: string
  /** The request as each config receives it (generated requests use each config's claim locations). */
  before: CaseRequest
  after: CaseRequest
}

/** Decides each request under both configs and lists the decisions that change, in request order. */
export async function diffDecisions (from: CaseRunner, to: CaseRunner, requests: readonly DiffRequest[]): Promise<DecisionChange[]> {
  const changes: DecisionChange[] = []
  for (const request of requests) {
    const before = await from.observe(request.before)
    const after = await to.observe(request.after)
    const change = classify(before, after)
    if (change !== null) changes.push({ name: request.name, before, after, ...change })
  }
  return changes
}

export function formatChanges (changes: readonly DecisionChange[], compared: number): string {
  const lines = changes.map((c) => `${c.kind.toUpperCase().padEnd(9)}${c.name}: ${c.detail}`)
  const count = (kind: ChangeKind): number => changes.filter((c) => c.kind === kind).length
  lines.push(`${compared} requests compared: ${count('widened')} widened, ${count('narrowed')} narrowed, ${count('changed')} changed`)
  return lines.join('\n') + '\n'
}
