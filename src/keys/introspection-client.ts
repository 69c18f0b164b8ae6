/**
 * Talks RFC 7662 to one issuer's introspection endpoint: where the endpoint is (configured, or the
 * discovery document's `introspection_endpoint`, fetched once and kept), how scopegate authenticates
 * (`client_secret_basic`, `client_secret_post`, or a `private_key_jwt` assertion per RFC 7523), and a
 * bounded POST: a deadline over the whole exchange, a byte limit while reading, no redirects. The
 * endpoint never comes from a token or a request. Errors say which limit was hit and never carry the
 * token or the secret.
 */
import { randomUUID, type KeyObject } from 'node:crypto'
import { SignJWT } from 'jose'
import type { CompiledIntrospection, CompiledIssuer } from '../config/types.js'
import { expectOk, fetchJson, FetchJsonError, readBounded, type FetchLike } from './fetch-json.js'

/** What an introspection call can fail with, besides the kinds of `fetchJson` (`not_json` covers garbage). */
export type IntrospectionFailure = FetchJsonError['kind'] | 'discovery'

const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

/** RFC 9701 §5: the media type of a signed introspection answer. */
const SIGNED_TYPE = 'application/token-introspection+jwt'

/** Lifetime of a `private_key_jwt` assertion, seconds: long enough for one call, short enough to be useless later. */
const ASSERTION_TTL_SEC = 60

export class IntrospectionClient {
  readonly issuer: CompiledIssuer
  private readonly config: CompiledIntrospection
  private readonly fetch: FetchLike
  private readonly now: () => number
  private endpoint: string | null
  private discovering: Promise<string> | null = null

  /** Verifies an RFC 9701 signed answer and returns its `token_introspection` (when `jwtResponse`). */
  private readonly openSigned: ((jwt: string) => Promise<Record<string, unknown>>) | undefined

  constructor (issuer: CompiledIssuer, config: CompiledIntrospection,
    options: { fetch?: FetchLike, now?: () => number, openSigned?: (jwt: string) => Promise<Record<string, unknown>> } = {}) {
    this.issuer = issuer
    this.config = config
    this.openSigned = options.openSigned
    this.fetch = options.fetch ?? (globalThis.fetch as FetchLike)
    this.now = options.now ?? Date.now
    this.endpoint = config.endpoint.kind === 'url' ? config.endpoint.url : null
  }

  /** The endpoint: configured, or read once from discovery (every caller shares the one fetch under way). */
  private async resolveEndpoint (): Promise<string> {
    if (this.endpoint !== null) return this.endpoint
    this.discovering ??= this.discover().finally(() => { this.discovering = null })
    return await this.discovering
  }

  private async discover (): Promise<string> {
    const { url } = this.config.endpoint
    const doc = await fetchJson(url, { timeoutMs: this.config.timeoutMs, maxBytes: this.issuer.jwks.maxBytes, fetch: this.fetch })
    const record = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>
    // The document must be the issuer's own (OIDC Discovery §4.3), or its endpoint is not to be trusted.
    if (record.issuer !== this.issuer.issuer) throw new FetchJsonError('not_json', 'the discovery document names another issuer')
    const endpoint = record.introspection_endpoint
    if (typeof endpoint !== 'string' || !/^https?:\/\//.test(endpoint)) {
      throw new FetchJsonError('not_json', 'the discovery document has no http(s) introspection_endpoint')
    }
    this.endpoint = endpoint
    return endpoint
  }

  /**
   * The form and headers that authenticate scopegate, per the configured method: at once for a secret,
   * a promise only for a signed assertion.
   */
  private credentials (endpoint: string, form: URLSearchParams): Record<string, string> | Promise<Record<string, string>> {
    const { auth, clientId } = this.config
    if (auth.method === 'private_key_jwt') return this.assertion(endpoint, form, auth.alg, auth.key)
    if (auth.method === 'client_secret_basic') {
      // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
      const pair = `${encodeURIComponent(clientId)}:${encodeURIComponent(auth.secret.reveal())}`
      return { authorization: `Basic ${Buffer.from(pair).toString('base64')}` }
    }
    form.set('client_id', clientId)
    form.set('client_secret', auth.secret.reveal())
    return {}
  }

  /** `private_key_jwt` (RFC 7523): a short-lived assertion signed with scopegate's key. */
  private async assertion (endpoint: string, form: URLSearchParams, alg: string, key: KeyObject): Promise<Record<string, string>> {
    const { clientId } = this.config
    const now = Math.floor(this.now() / 1000)
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg })
      .setIssuer(clientId).setSubject(clientId).setAudience(endpoint)
      .setIssuedAt(now).setExpirationTime(now + ASSERTION_TTL_SEC).setJti(randomUUID())
      .sign(key)
    form.set('client_id', clientId)
    form.set('client_assertion_type', CLIENT_ASSERTION_TYPE)
    form.set('client_assertion', assertion)
    return {}
  }

  /**
   * POSTs the token and returns the parsed JSON answer (an object, not yet judged). Throws
   * `FetchJsonError` on a timeout, a network error, a status other than 200, a redirect, an answer too
   * large, or one that is not a JSON object.
   */
  async introspect (token: string): Promise<Record<string, unknown>> {
    // Without a discovery or a signature to wait for, the POST starts in the caller's turn: a tracer then
    // sees which verification asked (docs/observability.md#spans).
    const endpoint = this.endpoint ?? await this.resolveEndpoint()
    const form = new URLSearchParams({ token, token_type_hint: 'access_token' })
    const found = this.credentials(endpoint, form)
    const headers = found instanceof Promise ? await found : found
    const signal = AbortSignal.timeout(this.config.timeoutMs)
    let body: Buffer
    let signed = false
    try {
      const response = await this.fetch(endpoint, {
        method: 'POST',
        redirect: 'manual',
        signal,
        headers: { ...headers, accept: this.config.jwtResponse ? SIGNED_TYPE : 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString()
      })
      await expectOk(response)
      body = await readBounded(response, this.config.maxBytes)
      signed = (response.headers.get('content-type') ?? '').toLowerCase().startsWith(SIGNED_TYPE)
    } catch (err) {
      if (err instanceof FetchJsonError) throw err
      if (signal.aborted) throw new FetchJsonError('timeout', `no complete answer within ${this.config.timeoutMs} ms`)
      const cause = (err as { cause?: { code?: string } }).cause?.code
      throw new FetchJsonError('network', `the request failed${cause === undefined ? '' : ` (${cause})`}`)
    }
    // Asked for a signed answer, only a signed answer is taken: an unsigned one could come from anyone on the path.
    if (this.config.jwtResponse) {
      if (!signed || this.openSigned === undefined) throw new FetchJsonError('not_json', `the answer is not ${SIGNED_TYPE}`)
      return await this.openSigned(body.toString('utf8').trim())
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(body.toString('utf8'))
    } catch {
      throw new FetchJsonError('not_json', `the answer is not JSON (${body.length} bytes)`)
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new FetchJsonError('not_json', 'the answer is not a JSON object')
    return parsed as Record<string, unknown>
  }
}
