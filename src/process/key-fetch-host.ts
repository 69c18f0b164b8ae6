/**
 * A cluster primary's key fetches on behalf of its workers (see `worker-key-fetch.ts` for the worker's
 * side), so that an issuer sees one fetch per refresh or unknown `kid` from the whole group instead of
 * one per worker: an IdP that rate-limits its JWKS would refuse 32 workers asking at once.
 *
 * - Asks for the same URL while a fetch is under way share that fetch.
 * - An answer (keys or failure) is reused for an ask that comes within the asker's `shareMs`, the issuer's
 *   `jwks.cooldown`: a worker that asks later, for a `kid` another worker already found unknown, gets the
 *   same answer, as it would have from its own fetch within the cooldown. The group thus hits the issuer
 *   at most once per cooldown, like a single process.
 * - Only the bounded GET happens here (`fetchBody`: deadline, byte limit, no redirect, status 200). What
 *   the keys mean (parsing, cooldown, backoff, stale keys, readiness) stays in each worker's key store.
 *
 * The primary answers `fetch-accepted` at once, then `fetch-answer` when the fetch ends; a worker that
 * gets no `fetch-accepted` in time fetches itself (docs/operations.md#workers-multi-core).
 */
import { fetchBody, FetchJsonError, type FetchLike } from '../keys/fetch-json.js'
import type { KeyFetchAnswer, ToPrimary, ToWorker } from './cluster-ipc.js'

type FetchAsk = Extract<ToPrimary, { scopegate: 'fetch-keys' }>

/** Most answers kept for reuse; past it the oldest goes. URLs come from the config only, so few are expected. */
const MAX_SHARED = 256

interface Shared {
  /** Milliseconds since the epoch when the fetch ended; null while under way. */
  endedAt: number | null
  /** Milliseconds the answer may be reused after `endedAt` (the asker's): past it, the entry is dropped. */
  shareMs: number
  answer: Promise<KeyFetchAnswer>
}

export interface KeyFetchHostOptions {
  fetch?: FetchLike
  /** Milliseconds since the epoch. */
  now?: () => number
}

export class KeyFetchHost {
  private readonly fetchImpl: FetchLike | undefined
  private readonly now: () => number
  private readonly shared = new Map<string, Shared>()
  /** Fetches made (not asks answered): what the issuers saw from this group. */
  fetches = 0

  constructor (options: KeyFetchHostOptions = {}) {
    this.fetchImpl = options.fetch
    this.now = options.now ?? Date.now
  }

  /** Answers a worker's ask through `reply`: accepted at once, then the answer. Never throws. */
  serve (ask: FetchAsk, reply: (message: ToWorker) => void): void {
    reply({ scopegate: 'fetch-accepted', id: ask.id })
    void this.answer(ask).then((answer) => { reply({ scopegate: 'fetch-answer', id: ask.id, answer }) })
  }

  /** The answer for `ask`: the fetch under way, one that ended less than `shareMs` ago, or a new one. */
  answer (ask: Pick<FetchAsk, 'url' | 'timeoutMs' | 'maxBytes' | 'shareMs'>): Promise<KeyFetchAnswer> {
    // The byte limit is part of the key: an issuer with a smaller one must not get a larger body.
    const key = `${ask.maxBytes} ${ask.url}`
    const held = this.shared.get(key)
    if (held !== undefined && (held.endedAt === null || this.now() - held.endedAt < ask.shareMs)) return held.answer
    const entry: Shared = { endedAt: null, shareMs: ask.shareMs, answer: this.fetch(ask) }
    void entry.answer.then(() => { entry.endedAt = this.now() })
    this.prune()
    this.shared.delete(key)
    this.shared.set(key, entry)
    if (this.shared.size > MAX_SHARED) this.shared.delete(this.shared.keys().next().value as string)
    return entry.answer
  }

  /** How many answers are held (under way or reusable); for tests. */
  get held (): number {
    return this.shared.size
  }

  /** Drops the answers no ask could reuse any more, so a body is not held past its use. */
  private prune (): void {
    const now = this.now()
    for (const [key, entry] of this.shared) {
      if (entry.endedAt !== null && now - entry.endedAt >= entry.shareMs) this.shared.delete(key)
    }
  }

  private async fetch (ask: Pick<FetchAsk, 'url' | 'timeoutMs' | 'maxBytes'>): Promise<KeyFetchAnswer> {
    this.fetches++
    try {
      const { body, contentType } = await fetchBody(ask.url, { timeoutMs: ask.timeoutMs, maxBytes: ask.maxBytes, fetch: this.fetchImpl })
      return { ok: true, body: body.toString('utf8'), contentType }
    } catch (err) {
      const kind = err instanceof FetchJsonError ? err.kind : 'network'
      return { ok: false, kind, message: err instanceof Error ? err.message : String(err) }
    }
  }
}
