/**
 * A bounded JSON fetch for key material: a deadline over the whole exchange, a byte limit enforced while
 * reading (the rest is never read), no redirects followed, and an error that says which limit was hit.
 */

export type FetchFailure = 'timeout' | 'network' | 'status' | 'redirect' | 'too_large' | 'not_json'

export class FetchJsonError extends Error {
  readonly kind: FetchFailure
  constructor (kind: FetchFailure, message: string) {
    super(message)
    this.name = 'FetchJsonError'
    this.kind = kind
  }
}

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>

export interface FetchJsonOptions {
  timeoutMs: number
  maxBytes: number
  fetch?: FetchLike
}

/** The body, read no further than `maxBytes`; throws `FetchJsonError` (`too_large`) past it. */
export async function readBounded (response: Response, maxBytes: number): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length'))
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel()
    throw new FetchJsonError('too_large', `body of ${declared} bytes exceeds maxBytes ${maxBytes}`)
  }
  if (response.body === null) return Buffer.alloc(0)
  const chunks: Uint8Array[] = []
  let total = 0
  const reader = response.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > maxBytes) {
      await reader.cancel()
      throw new FetchJsonError('too_large', `body exceeds maxBytes ${maxBytes}`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks)
}

/** The first characters of a body that is not JSON, printable only, so a log line says what came back (an HTML error page, a proxy's banner…). */
function preview (body: Buffer): string {
  return body.subarray(0, 200).toString('utf8').replace(/[^\x20-\x7e]+/g, ' ').trim().slice(0, 60)
}

/** Throws, the body cancelled, for a redirect (never followed) or any status but 200. */
export async function expectOk (response: Response): Promise<void> {
  if (response.type === 'opaqueredirect' || (response.status >= 300 && response.status < 400)) {
    await response.body?.cancel()
    throw new FetchJsonError('redirect', `answered ${response.status}; redirects are not followed`)
  }
  if (response.status !== 200) {
    await response.body?.cancel()
    throw new FetchJsonError('status', `answered HTTP ${response.status}`)
  }
}

/** A 200 answer's body, read within the limits, and its content type. */
export interface FetchedBody {
  body: Buffer
  contentType: string | null
}

/**
 * GET `url` within `timeoutMs` and `maxBytes`, status 200 only, no redirect followed; throws
 * `FetchJsonError`, whose `kind` says what went wrong. A cluster primary runs this on its workers' behalf
 * (`src/process/key-fetch-host.ts`), so the limits and the failures are the same wherever it runs.
 */
export async function fetchBody (url: string, options: FetchJsonOptions): Promise<FetchedBody> {
  const doFetch = options.fetch ?? (globalThis.fetch as FetchLike)
  const signal = AbortSignal.timeout(options.timeoutMs)
  try {
    const response = await doFetch(url, { redirect: 'manual', signal, headers: { accept: 'application/json, application/jwk-set+json' } })
    // A redirect could lead anywhere; the key URL is the one configured (or discovered), nothing else.
    await expectOk(response)
    return { body: await readBounded(response, options.maxBytes), contentType: response.headers.get('content-type') }
  } catch (err) {
    if (err instanceof FetchJsonError) throw err
    if (signal.aborted) throw new FetchJsonError('timeout', `no complete answer within ${options.timeoutMs} ms`)
    const cause = (err as { cause?: { code?: string } }).cause?.code
    throw new FetchJsonError('network', `${(err as Error).message}${cause === undefined ? '' : ` (${cause})`}`)
  }
}

/** GET `url` and parse its JSON body, within `timeoutMs` and `maxBytes`; throws `FetchJsonError`, whose `kind` says what went wrong. */
export async function fetchJson (url: string, options: FetchJsonOptions): Promise<unknown> {
  const { body, contentType } = await fetchBody(url, options)
  try {
    return JSON.parse(body.toString('utf8'))
  } catch {
    throw new FetchJsonError('not_json', `body is not JSON (${contentType ?? 'no content-type'}, ${body.length} bytes, starts ${JSON.stringify(preview(body))})`)
  }
}
