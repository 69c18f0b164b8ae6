/**
 * The request an Envoy ext_authz `CheckRequest` asks about (docs/istio.md), read into the decision input
 * that proxy mode and forward auth build: method, raw target, host, the Authorization and DPoP values,
 * the client address, the client certificate, and the CORS fields that make a preflight.
 *
 * What Envoy sends (`envoy.service.auth.v3.AttributeContext`): `request.http` has the method, `path`
 * (the request-target as received: path and query, not decoded), `host` (`:authority`), `scheme`, and the
 * headers either as `headers` (a map, lower-case names, repeated headers joined with `,`, pseudo-headers
 * such as `:path` included) or, with `encode_raw_headers`, as `header_map` (a list, repeated headers kept
 * apart, values in `raw_value` bytes). Pseudo-headers are not request headers here: the fields above
 * already say what they do, and they are dropped. `source.address` is the downstream client as Envoy
 * resolved it (after its own `xff_num_trusted_hops`), `source.certificate` the client certificate as a
 * URL-encoded PEM when the downstream connection used mTLS.
 *
 * Trust model, as in forward auth (`http/forward-auth-request.ts`): the request itself is what the caller
 * names. What the caller asserts about the client (its address, its certificate, the scheme a DPoP proof's
 * `htu` is checked against) is believed only when the gRPC peer is in `server.trustProxy`; from any
 * other peer the client is the peer itself, with no certificate and no known origin.
 *
 * A request that cannot be read (no `http` attributes, no method, a target that is not origin-form) is a
 * 400 `invalid_request` with a fixed description, never a guess.
 */
import { isIP } from 'node:net'
import type { CorsFields } from './judge-request.js'
import type { DecisionInput } from '../decision/decide.js'
import { unmapIPv4 } from '../net/ip-matcher.js'
import { pemThumbprint } from '../request/client-certificate.js'
import { authorizationValues } from '../request/extract-token.js'
import { DPOP_SCHEME, dpopProofValues } from '../request/extract-dpop-token.js'
import { requestOrigin } from '../request/request-origin.js'
import { deny, type GatewayError } from '../shared/errors.js'

/** The parts of a `CheckRequest` read here, as @grpc/proto-loader decodes them (`keepCase`, `defaults: false`). */
export interface CheckRequestMessage {
  attributes?: {
    source?: PeerMessage | null
    request?: { http?: HttpRequestMessage | null } | null
  } | null
}

export interface PeerMessage {
  address?: { socket_address?: { address?: string } | null } | null
  certificate?: string
}

export interface HttpRequestMessage {
  method?: string
  headers?: Record<string, string>
  header_map?: { headers?: Array<{ key?: string, value?: string, raw_value?: Uint8Array }> } | null
  path?: string
  host?: string
  scheme?: string
}

/** The request a CheckRequest names: the decision input, and the CORS fields for a preflight. */
export interface CheckedRequest {
  input: DecisionInput
  cors: CorsFields
  /** The original request's headers, `[name, value, …]`, lower-case names, pseudo-headers left out. */
  rawHeaders: string[]
}

/** An HTTP method is a token (RFC 9110 §9.1). */
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** Fixed public text: it never echoes what the caller sent. */
const UNUSABLE = 'the original request could not be determined'

function unusable (detail: string): GatewayError {
  return deny.badRequest('request_malformed', UNUSABLE, detail)
}

/** The headers as a raw list: from `header_map` when Envoy sends it, else from the `headers` map. */
function rawHeadersOf (http: HttpRequestMessage): string[] {
  const raw: string[] = []
  const list = http.header_map?.headers
  if (list !== undefined && list.length > 0) {
    for (const { key, value, raw_value: bytes } of list) {
      if (key === undefined || key === '' || key.startsWith(':')) continue
      raw.push(key.toLowerCase(), value !== undefined && value !== '' ? value : Buffer.from(bytes ?? []).toString('latin1'))
    }
    return raw
  }
  for (const [key, value] of Object.entries(http.headers ?? {})) {
    if (key === '' || key.startsWith(':')) continue
    raw.push(key.toLowerCase(), value)
  }
  return raw
}

/** A header's single value, or undefined. */
function one (rawHeaders: readonly string[], name: string): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i] === name) return rawHeaders[i + 1]
  return undefined
}

/** The `:authority` pseudo-header, when Envoy left `host` empty (an HTTP/2 request names its host only there). */
function authorityOf (http: HttpRequestMessage): string | undefined {
  const fromMap = http.headers?.[':authority']
  if (fromMap !== undefined && fromMap !== '') return fromMap
  const entry = http.header_map?.headers?.find((h) => h.key === ':authority')
  const value = entry?.value !== undefined && entry.value !== '' ? entry.value : entry?.raw_value === undefined ? undefined : Buffer.from(entry.raw_value).toString('latin1')
  return value === '' ? undefined : value
}

/** The client address Envoy names, when believed and an IP; else the peer's own. */
function clientAddress (source: PeerMessage | null | undefined, peer: string, peerTrusted: boolean): string {
  const named = source?.address?.socket_address?.address
  if (peerTrusted && named !== undefined && isIP(named) !== 0) return unmapIPv4(named)
  return unmapIPv4(peer)
}

/**
 * The request a CheckRequest asks about.
 *
 * @param peer The gRPC peer's address (Envoy's), IPv4-mapped or not.
 * @param peerTrusted Whether the peer is in `server.trustProxy`.
 * @throws GatewayError 400 `invalid_request` when the request cannot be read, or the certificate it names cannot.
 */
export function checkedRequest (message: CheckRequestMessage, peer: string, peerTrusted: boolean): CheckedRequest {
  const http = message.attributes?.request?.http
  if (http === undefined || http === null) throw unusable('the CheckRequest has no attributes.request.http')
  const method = http.method ?? ''
  if (!METHOD.test(method)) throw unusable('attributes.request.http.method is not an HTTP method')
  const target = http.path ?? ''
  if (target.charCodeAt(0) !== 0x2f) throw unusable('attributes.request.http.path is not an origin-form target')
  const rawHeaders = rawHeadersOf(http)
  const host = http.host !== undefined && http.host !== '' ? http.host : authorityOf(http) ?? one(rawHeaders, 'host')
  const source = message.attributes?.source
  const input: DecisionInput = {
    method,
    target,
    authorization: authorizationValues(rawHeaders),
    clientIp: clientAddress(source, peer, peerTrusted),
    ...(host === undefined ? {} : { host })
  }
  if (DPOP_SCHEME.test(one(rawHeaders, 'authorization') ?? '')) {
    const scheme = http.scheme?.toLowerCase()
    const origin = peerTrusted && host !== undefined && (scheme === 'http' || scheme === 'https') ? requestOrigin(`${scheme}://${host}`) : null
    input.dpop = { proofs: dpopProofValues(rawHeaders), origin }
  }
  const certificate = source?.certificate
  if (peerTrusted && certificate !== undefined && certificate !== '') input.certificateThumbprint = pemThumbprint(certificate)
  const cors: CorsFields = {
    origin: one(rawHeaders, 'origin'),
    requestMethod: one(rawHeaders, 'access-control-request-method'),
    requestHeaders: one(rawHeaders, 'access-control-request-headers')
  }
  return { input, cors, rawHeaders }
}
