/**
 * The upstream's response headers as the client receives them. Hop-by-hop headers (RFC 9110 §7.6.1)
 * describe the upstream's connection to scopegate, not scopegate's connection to the client: passed on,
 * an upstream's `Connection: keep-alive` would hold open a connection the client asked to close, and a
 * header its `Connection` names would reach a client it was never meant for. `Transfer-Encoding` is left
 * to Node, which frames the client's response itself.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { PLAIN_CONNECTION, connectionNames } from './upstream-headers.js'

const RESPONSE_HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade'] as const

/** Removes the hop-by-hop headers from `headers` (lower-case names, as parsed), in place, and returns it. */
export function downstreamHeaders (headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const connection = headers.connection
  // A bare `keep-alive` or `close` (nearly every upstream's) names no other header: nothing to split.
  if (connection !== undefined && !(typeof connection === 'string' && PLAIN_CONNECTION.test(connection))) {
    for (const name of connectionNames(connection)) if (name !== 'transfer-encoding') delete headers[name]
  }
  for (const name of RESPONSE_HOP_BY_HOP) if (headers[name] !== undefined) delete headers[name]
  return headers
}
