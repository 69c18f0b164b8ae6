/**
 * The request headers sent upstream. Strip before adding: every client copy of a header scopegate sets
 * (any `x-auth-*`, and each `forward.claims` header) is removed whatever its case, and so is every header
 * the client named in `Connection` — otherwise a client could list `x-auth-subject` there and have a
 * hop-by-hop-aware proxy drop the header scopegate added. Hop-by-hop headers (RFC 9110 §7.6.1) never
 * travel further. Only then are the identity headers added.
 */
import type { IncomingHttpHeaders } from 'node:http'

/** Also what `http/upgrade.ts` drops from a non-101 answer to a handshake. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

export interface UpstreamHeaderOptions {
  /** Lower-case names scopegate sets; their client copies are removed. */
  identityHeaders: ReadonlySet<string>
  /** What to add, lower-case names. */
  add: Readonly<Record<string, string>>
  authorization: 'keep' | 'strip' | 'reissue'
  /** Replaces the Authorization header when `authorization` is reissue. */
  reissued?: string
}

/** A Connection value that names nothing but the connection's own fate, as almost every client sends. */
const PLAIN_CONNECTION = /^\s*(?:keep-alive|close)\s*$/i

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
    if (HOP_BY_HOP.has(name) || name.startsWith('x-auth-') || options.identityHeaders.has(name) || (drop !== null && drop.has(name) && name !== 'host')) continue
    out[name] = headers[name]
  }
  if (options.authorization === 'strip') delete out.authorization
  else if (options.authorization === 'reissue') {
    if (options.reissued === undefined) delete out.authorization
    else out.authorization = `Bearer ${options.reissued}`
  }
  for (const name in options.add) out[name] = options.add[name]
  return out
}
