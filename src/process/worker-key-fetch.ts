/**
 * A cluster worker's key fetches, made by the primary (`key-fetch-host.ts`), which shares one fetch among
 * every worker that asks for the same URL.
 *
 * It is the `fetch` of the worker's key stores: they keep all their policy (cooldown, refresh-ahead,
 * stale keys, readiness) and see the primary's answer as a response of their own fetch, or as the same
 * `FetchJsonError` their own fetch would have thrown. Only plain GETs go to the primary; anything else
 * (an introspection POST, which carries a token) is sent by the worker itself.
 *
 * A wedged or absent primary must not stop verification: the worker waits at most ACCEPT_WAIT_MS (never
 * more than half the fetch's timeout) for the primary to take the fetch on, then fetches itself. Once the
 * primary has taken it on, the fetch's own deadline (`jwks.timeout`) bounds the wait for the answer.
 */
import type { CompiledIssuer } from '../config/types.js'
import { FetchJsonError, type FetchLike } from '../keys/fetch-json.js'
import { isMessage, type KeyFetchAnswer, type ToPrimary, type ToWorker } from './cluster-ipc.js'

/** Milliseconds a worker waits for the primary to take a key fetch on before it fetches itself. */
export const ACCEPT_WAIT_MS = 1000

/** The worker's end of the IPC channel to its primary. */
export interface PrimaryChannel {
  /** Sends to the primary; false when there is no primary to send to. */
  send: (message: ToPrimary) => boolean
  /** Calls `listener` with each of scopegate's messages from the primary. */
  listen: (listener: (message: ToWorker) => void) => void
}

/** The channel node:cluster gives a worker. */
export const processChannel: PrimaryChannel = {
  send: (message) => {
    if (process.send === undefined || !process.connected) return false
    process.send(message)
    return true
  },
  listen: (listener) => {
    process.on('message', (message: unknown) => { if (isMessage<ToWorker>(message)) listener(message) })
  }
}

export interface WorkerKeyFetchOptions {
  channel?: PrimaryChannel
  /** The worker's own fetch, for the fallback and for what does not go to the primary. */
  fetch?: FetchLike
  /** Milliseconds; default ACCEPT_WAIT_MS. */
  acceptWaitMs?: number
  /** The worker fetched itself because the primary did not take the fetch on (logged by the caller). */
  onFallback?: (url: string, reason: string) => void
}

interface Waiting {
  accepted: () => void
  answered: (answer: KeyFetchAnswer) => void
}

export class WorkerKeyFetch {
  private readonly channel: PrimaryChannel
  private readonly direct: FetchLike
  private readonly acceptWaitMs: number
  private readonly onFallback: ((url: string, reason: string) => void) | undefined
  private readonly waiting = new Map<number, Waiting>()
  private nextId = 0

  constructor (options: WorkerKeyFetchOptions = {}) {
    this.channel = options.channel ?? processChannel
    this.direct = options.fetch ?? (globalThis.fetch as FetchLike)
    this.acceptWaitMs = options.acceptWaitMs ?? ACCEPT_WAIT_MS
    this.onFallback = options.onFallback
    this.channel.listen((message) => { this.onMessage(message) })
  }

  /** The fetch of one issuer's key store and introspection client (an engine's `fetchFor`). */
  readonly fetchFor = (issuer: CompiledIssuer): FetchLike => {
    const { timeoutMs, maxBytes, cooldownMs } = issuer.jwks
    return async (url, init) => {
      if ((init.method ?? 'GET').toUpperCase() !== 'GET' || init.body != null) return await this.direct(url, init)
      return await this.viaPrimary(url, init, { url, timeoutMs, maxBytes, shareMs: cooldownMs })
    }
  }

  /** How many fetches wait for the primary (tests: none is left behind). */
  get pending (): number {
    return this.waiting.size
  }

  private viaPrimary (url: string, init: RequestInit, ask: Omit<Extract<ToPrimary, { scopegate: 'fetch-keys' }>, 'scopegate' | 'id'>): Promise<Response> {
    const id = this.nextId++
    const signal = init.signal ?? undefined
    return new Promise<Response>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(signal.reason)
        return
      }
      const done = (): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', aborted)
        this.waiting.delete(id)
      }
      const fallback = (reason: string): void => {
        done()
        this.onFallback?.(url, reason)
        this.direct(url, init).then(resolve, reject)
      }
      const aborted = (): void => { done(); reject(signal?.reason) }
      const waitMs = Math.min(this.acceptWaitMs, ask.timeoutMs / 2)
      const timer = setTimeout(() => { fallback(`the cluster primary did not take the fetch on within ${waitMs} ms`) }, waitMs)
      signal?.addEventListener('abort', aborted, { once: true })
      this.waiting.set(id, {
        accepted: () => { clearTimeout(timer) },
        answered: (answer) => {
          done()
          if (answer.ok) resolve(responseOf(answer.body, answer.contentType))
          else reject(new FetchJsonError(answer.kind, answer.message))
        }
      })
      if (!this.channel.send({ scopegate: 'fetch-keys', id, ...ask })) fallback('no cluster primary to ask')
    })
  }

  private onMessage (message: ToWorker): void {
    if (message.scopegate === 'fetch-accepted') this.waiting.get(message.id)?.accepted()
    else if (message.scopegate === 'fetch-answer') this.waiting.get(message.id)?.answered(message.answer)
  }
}

/** The primary's 200 answer as the response the key store's own fetch would have had. */
function responseOf (body: string, contentType: string | null): Response {
  // Bytes, not a string: a string body would get a content type the issuer never sent.
  return new Response(Buffer.from(body, 'utf8'), { status: 200, headers: contentType === null ? {} : { 'content-type': contentType } })
}
