/**
 * The messages a cluster primary and its workers exchange over node:cluster's IPC channel (see
 * `cluster.ts`). Each carries a `scopegate` field naming it, which tells them from other messages on the
 * same channel (prom-client's).
 */
import type { FetchFailure } from '../keys/fetch-json.js'
import type { DenialEntry } from '../observability/denial-feed.js'

/** The environment variable that marks a process as scopegate's worker, and holds its slot number. */
export const WORKER_ENV = 'SCOPEGATE_WORKER_ID'

/** Milliseconds the primary waits for every worker's answer; a worker that misses it is left out. */
export const GROUP_TIMEOUT_MS = 2000

/** What a worker's admin listener asks the primary for, and the primary asks each worker. */
export type Query = 'metrics' | 'readiness' | 'status'

/** A registry's `getMetricsAsJSON()`, as it crosses IPC. */
export type Metrics = object[]

export type ToPrimary =
  /** The worker's signal handlers are installed: the primary may send SIGHUP from now on. */
  | { scopegate: 'hello' }
  | { scopegate: 'listening', proxyUrl: string, adminUrl: string }
  | { scopegate: 'ask-group', id: number, query: Query }
  | { scopegate: 'local-answer', id: number, result: unknown }
  /** Denials this worker made, for the other workers' live status feeds (docs/observability.md#status-page). */
  | { scopegate: 'denials', entries: DenialEntry[] }
  /** Fetch key material for this worker (`key-fetch-host.ts`); an answer fetched less than `shareMs` ago may be reused. */
  | { scopegate: 'fetch-keys', id: number, url: string, timeoutMs: number, maxBytes: number, shareMs: number }

/** What the primary's key fetch came to: a 200 answer's body, or the failure `fetchBody` threw. */
export type KeyFetchAnswer =
  | { ok: true, body: string, contentType: string | null }
  | { ok: false, kind: FetchFailure, message: string }

export type ToWorker =
  | { scopegate: 'ask-local', id: number, query: Query }
  | { scopegate: 'group-answer', id: number, result?: unknown, error?: string }
  /** Denials another worker made, relayed by the primary. */
  | { scopegate: 'denials', entries: DenialEntry[] }
  /** The primary has taken the key fetch `id` on: the worker now waits for the answer instead of fetching itself. */
  | { scopegate: 'fetch-accepted', id: number }
  | { scopegate: 'fetch-answer', id: number, answer: KeyFetchAnswer }

/** Whether an IPC message is one of scopegate's (its shape is then that of `T`, which the sender chose). */
export const isMessage = <T extends { scopegate: string }>(value: unknown): value is T =>
  typeof value === 'object' && value !== null && typeof (value as { scopegate?: unknown }).scopegate === 'string'
