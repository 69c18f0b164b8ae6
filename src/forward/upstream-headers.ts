/**
 * The request headers sent upstream. Strip before adding: every client copy of a header scopegate sets
 * (any `x-auth-*`, each `forward.claims` header, the forwarding headers) is removed whatever its case or
 * underscore spelling, and so are the headers upstreams obey as instructions (`strip-headers.ts`) and
 * every header the client named in `Connection` — otherwise a client could list `x-auth-subject` there
 * and have a hop-by-hop-aware proxy drop the header scopegate added. Hop-by-hop headers (RFC 9110
 * §7.6.1) never travel further. Only then are the Host, the forwarding headers and the identity headers
 * set. See docs/proxying.md, "What the upstream receives".
 */
import type { IncomingHttpHeaders } from 'node:http'
import { isStrippedHeader } from './strip-headers.js'

// `expect` is an expectation between the client and scopegate, which answers it itself (docs/proxying.md).
/** Also what `http/upgrade.ts` drops from a non-101 answer to a handshake. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'expect', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

export interface UpstreamHeaderOptions {
  /** Lower-case names scopegate sets; their client copies are removed. */
  identityHeaders: ReadonlySet<string>
  /** The route's compiled `forward.stripHeaders` (the built-in list and its own). */
  stripHeaders: ReadonlySet<string>
  /** The Host to send; undefined keeps the one in `headers`. */
  host?: string
  /** Forwarding headers (`forwardingHeaders`), set before the identity headers. */
  forwarding?: Readonly<Record<string, string>>
  /** What to add, lower-case names. */
  add: Readonly<Record<string, string>>
  authorization: 'keep' | 'strip' | 'reissue'
  /** Replaces the Authorization header when `authorization` is reissue. */
  reissued?: string
}

/** A Connection value that names nothing but the connection's own fate, as almost every client (and upstream) sends. */
export const PLAIN_CONNECTION = /^\s*(?:keep-alive|close)\s*$/i

/** Names listed in a Connection header value, lower-cased. */
export function connectionNames (value: string | string[] | undefined): string[] {
  if (value === undefined) return []
  const text = Array.isArray(value) ? value.join(',') : value
  return text.split(',').map((n) => n.trim().toLowerCase()).filter((n) => n !== '')
}

/**
 * Builds the upstream header set from the client's (lower-case keys, as Node parses them). The input is
 * not modified. `connection` is the client's original Connection value, which a proxy library may
 * already have removed from `headers`.
 */
export function upstreamHeaders (headers: IncomingHttpHeaders, connection: string | string[] | undefined,
  options: UpstreamHeaderOptions): IncomingHttpHeaders {
  // Hop-by-hop names are dropped anyway; most Connection headers (`keep-alive`, `close`) name nothing else.
  const named = typeof connection === 'string' && PLAIN_CONNECTION.test(connection)
    ? []
    : connectionNames(connection).filter((name) => !HOP_BY_HOP.has(name))
  const drop = named.length === 0 ? null : new Set(named)
  const out: IncomingHttpHeaders = {}
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || isStrippedHeader(name, options.stripHeaders, options.identityHeaders)) continue
    if (drop !== null && drop.has(name) && name !== 'host') continue
    out[name] = headers[name]
  }
  if (options.authorization === 'strip') delete out.authorization
  else if (options.authorization === 'reissue') {
    if (options.reissued === undefined) delete out.authorization
    else out.authorization = `Bearer ${options.reissued}`
  }
  if (options.host !== undefined) out.host = options.host
  if (options.forwarding !== undefined) for (const name in options.forwarding) out[name] = options.forwarding[name]
  for (const name in options.add) out[name] = options.add[name]
  return out
}
