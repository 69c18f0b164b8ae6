/**
 * Which request an ingress is asking about, in a forward-auth call (docs/forward-auth.md). Three ways of saying
 * it exist, one per ingress family, and they are read in this order:
 *
 * 1. the path after `/decisions` (Envoy ext_authz over HTTP with `path_prefix: /decisions`, Oathkeeper
 *    style): `GET /decisions/todos/1?x=1` asks about `GET /todos/1?x=1`, and the method is the call's own;
 * 2. `X-Original-Method` with `X-Original-URI` or `X-Original-URL` (nginx `auth_request`, ingress-nginx
 *    `auth-url`, which sends the full URL);
 * 3. `X-Forwarded-Method` with `X-Forwarded-Uri` (Traefik ForwardAuth).
 *
 * The headers are believed only when the socket peer is in `server.trustProxy`: anyone else could name
 * any request they like. From an untrusted peer they are ignored, so the call is judged by its path form
 * or, without one, refused.
 *
 * A forward-auth answer is only as good as the agreement between what scopegate judged and what the
 * ingress forwards, so every doubt is a refusal, never a guess:
 * - a method header without a URI header (or the reverse) is refused, because the call's own method is
 *   not the original one (an nginx subrequest is always a GET);
 * - the same header twice is refused;
 * - when more than one way is present they must name the same method and target, or the call is
 *   refused. Ingresses pass most client headers on to the auth service (Traefik copies them all unless
 *   `authRequestHeaders` is set, ingress-nginx too), so a client could add `X-Original-URI: /public` to
 *   a request for `/admin` sent through Traefik; taking the first way present would then judge the wrong
 *   request. Requiring agreement leaves the client able to get only its own request refused;
 * - `X-Original-URL` must be an http(s) URL whose authority is a plain host[:port]. ingress-nginx builds
 *   it from the client's Host header, and nginx accepts `?` and `#` there: with `Host: x?` the URL
 *   `http://x?/admin` would otherwise read as path `/` with query `?/admin`.
 *
 * The original host (for routes with `match.host`, docs/forward-auth.md "The original host") follows the
 * same trust model. From a trusted peer, `X-Forwarded-Host` (Traefik; nginx with
 * `proxy_set_header X-Forwarded-Host $host`) and the authority of `X-Original-URL` (ingress-nginx) name it,
 * and must agree when both are present. Without them, the path form's own Host header does (Envoy sends
 * the original `:authority` as Host); it is only a fallback, because a proxy that is not Envoy sends
 * scopegate's own address there (nginx's `proxy_pass http://scopegate/decisions$request_uri`, a test
 * client), and it would then contradict the header that names the real host. With none, the request
 * names no host, and only routes without one match it.
 */
import { GatewayError, deny } from '../shared/errors.js'
import { normalizeTarget } from '../request/normalize-path.js'
import { requestHost } from '../routing/match-host.js'

/** The path every forward-auth call is made to; the path form appends the original path to it. */
export const DECISIONS_PATH = '/decisions'

/** The request an ingress asks about, and which way it was named (for logs). */
export interface OriginalRequest {
  method: string
  /** The raw request-target: path and query, as the ingress sent it. */
  target: string
  source: 'path' | 'x-original' | 'x-forwarded'
  /** The original host as sent (port included), or undefined when no trusted source names one. */
  host?: string
}

export interface ForwardAuthCall {
  /** The call's own method. */
  method: string
  /** The call's own raw request-target (`/decisions…`). */
  url: string
  /** The call's raw header list, `[name, value, name, value, …]`, so duplicates are seen. */
  rawHeaders: readonly string[]
  /** Whether the socket peer is in `server.trustProxy`. */
  peerTrusted: boolean
}

/** The headers this module reads, lower-case. */
const NAMED_HEADERS = ['x-original-method', 'x-original-uri', 'x-original-url', 'x-forwarded-method', 'x-forwarded-uri', 'x-forwarded-host'] as const
type NamedHeader = typeof NAMED_HEADERS[number]

/** An HTTP method is a token (RFC 9110 §9.1). */
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** `http(s)://authority/path…`: the authority is a host name, an IPv4 or a bracketed IPv6, and a port. */
const ORIGINAL_URL = /^https?:\/\/((?:[A-Za-z0-9._~-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?)(\/.*)$/i

/** Fixed public text: it never echoes what the caller sent (see `GatewayError.description`). */
const UNUSABLE = 'the original request could not be determined'

function unusable (detail: string): GatewayError {
  return deny.badRequest('request_malformed', UNUSABLE, detail)
}

/** Each named header's values, in order of arrival. */
function namedHeaders (rawHeaders: readonly string[]): Map<NamedHeader, string[]> {
  const found = new Map<NamedHeader, string[]>()
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] ?? '').toLowerCase() as NamedHeader
    if (!NAMED_HEADERS.includes(name)) continue
    const values = found.get(name) ?? []
    values.push(rawHeaders[i + 1] ?? '')
    found.set(name, values)
  }
  return found
}

/** One header's single value, or undefined when absent. Throws when it is repeated. */
function single (headers: Map<NamedHeader, string[]>, name: NamedHeader): string | undefined {
  const values = headers.get(name)
  if (values === undefined) return undefined
  if (values.length > 1) throw unusable(`${name} sent ${values.length} times`)
  return (values[0] as string).trim()
}

function checkMethod (name: NamedHeader, value: string): string {
  if (!METHOD.test(value)) throw unusable(`${name} is not an HTTP method`)
  return value
}

function checkOriginForm (name: NamedHeader, value: string): string {
  if (value.charCodeAt(0) !== 0x2f) throw unusable(`${name} does not start with "/"`)
  return value
}

/** The path and query of an `X-Original-URL`. */
function targetOfUrl (value: string): string {
  const match = ORIGINAL_URL.exec(value)
  if (match === null) throw unusable('x-original-url is not an http(s) URL with a plain host and a path')
  return match[2] as string
}

/** The call's own Host header: one, or undefined. */
function callHost (rawHeaders: readonly string[]): string | undefined {
  let host: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] ?? '').toLowerCase() !== 'host') continue
    if (host !== undefined) throw unusable('host sent more than once')
    host = (rawHeaders[i + 1] ?? '').trim()
  }
  return host
}

/**
 * The host the trusted headers name (which must agree), else the path form's Host; undefined when
 * nothing names one.
 */
function originalHost (call: ForwardAuthCall, headers: Map<NamedHeader, string[]>, byPath: boolean): string | undefined {
  const named: Array<[string, string]> = []
  if (call.peerTrusted) {
    const forwarded = single(headers, 'x-forwarded-host')
    if (forwarded !== undefined) {
      if (forwarded === '' || forwarded.includes(',')) throw unusable('x-forwarded-host is not one host')
      named.push(['x-forwarded-host', forwarded])
    }
    const url = single(headers, 'x-original-url')
    const authority = url === undefined ? undefined : ORIGINAL_URL.exec(url)?.[1]
    if (authority !== undefined && authority !== '') named.push(['x-original-url', authority])
  }
  const first = named[0]
  if (first === undefined) {
    const host = byPath ? callHost(call.rawHeaders) : undefined
    return host === '' ? undefined : host
  }
  for (const [source, host] of named.slice(1)) {
    if (requestHost(host) !== requestHost(first[1])) throw unusable(`the ${first[0]} and ${source} name different hosts`)
  }
  return first[1]
}

/** `X-Original-Method` with `X-Original-URI` and/or `X-Original-URL`; null when none of them is present. */
function fromOriginalHeaders (headers: Map<NamedHeader, string[]>): OriginalRequest | null {
  const method = single(headers, 'x-original-method')
  const uri = single(headers, 'x-original-uri')
  const url = single(headers, 'x-original-url')
  if (method === undefined && uri === undefined && url === undefined) return null
  if (method === undefined) throw unusable('x-original-uri or x-original-url without x-original-method')
  if (uri === undefined && url === undefined) throw unusable('x-original-method without x-original-uri or x-original-url')
  const fromUri = uri === undefined ? undefined : checkOriginForm('x-original-uri', uri)
  const fromUrl = url === undefined ? undefined : targetOfUrl(url)
  if (fromUri !== undefined && fromUrl !== undefined && fromUri !== fromUrl) {
    throw unusable('x-original-uri and x-original-url name different targets')
  }
  return { method: checkMethod('x-original-method', method), target: (fromUri ?? fromUrl) as string, source: 'x-original' }
}

/** `X-Forwarded-Method` with `X-Forwarded-Uri`; null when neither is present. */
function fromForwardedHeaders (headers: Map<NamedHeader, string[]>): OriginalRequest | null {
  const method = single(headers, 'x-forwarded-method')
  const uri = single(headers, 'x-forwarded-uri')
  if (method === undefined && uri === undefined) return null
  if (method === undefined) throw unusable('x-forwarded-uri without x-forwarded-method')
  if (uri === undefined) throw unusable('x-forwarded-method without x-forwarded-uri')
  return { method: checkMethod('x-forwarded-method', method), target: checkOriginForm('x-forwarded-uri', uri), source: 'x-forwarded' }
}

/** The original request named by the path after `/decisions`, or null for `/decisions` itself. */
function fromPath (method: string, url: string): OriginalRequest | null {
  if (!url.startsWith(DECISIONS_PATH)) return null
  const rest = url.slice(DECISIONS_PATH.length)
  if (rest.charCodeAt(0) !== 0x2f) return null // `/decisions` or `/decisions?…`
  return { method, target: rest, source: 'path' }
}

/**
 * Two ways agree when they name the same method and the same canonical target. A target with no
 * canonical form cannot be compared; it is left to `decide()`, which refuses it.
 */
function sameRequest (a: OriginalRequest, b: OriginalRequest): boolean {
  if (a.method !== b.method) return false
  if (a.target === b.target) return true
  try {
    const x = normalizeTarget(a.target)
    const y = normalizeTarget(b.target)
    return x.path === y.path && x.query === y.query
  } catch {
    return false
  }
}

/**
 * The request a forward-auth call asks about.
 *
 * @throws GatewayError 400 `invalid_request` (reason `request_malformed`) when it cannot be determined
 *   with certainty; its detail says why. The forward-auth layer answers it with 403.
 */
export function originalRequest (call: ForwardAuthCall): OriginalRequest {
  const ways: OriginalRequest[] = []
  const byPath = fromPath(call.method, call.url)
  if (byPath !== null) ways.push(byPath)

  const headers = namedHeaders(call.rawHeaders)
  if (call.peerTrusted) {
    const original = fromOriginalHeaders(headers)
    if (original !== null) ways.push(original)
    const forwarded = fromForwardedHeaders(headers)
    if (forwarded !== null) ways.push(forwarded)
  }

  const first = ways[0]
  if (first === undefined) {
    throw unusable(headers.size > 0 && !call.peerTrusted
      ? 'original-request headers ignored: the peer is not in server.trustProxy, and the path names no request'
      : 'no original request: neither a path after /decisions nor original-request headers')
  }
  for (const other of ways.slice(1)) {
    if (!sameRequest(first, other)) throw unusable(`the ${first.source} and ${other.source} forms name different requests`)
  }
  const host = originalHost(call, headers, byPath !== null)
  return host === undefined ? first : { ...first, host }
}
