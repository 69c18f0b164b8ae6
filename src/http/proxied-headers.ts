/**
 * The request headers an allowed request carries upstream, for the proxy (`h1-forward.ts`, `h2-forward.ts`) and for a
 * WebSocket handshake alike: the client's headers stripped, then `Host`, the forwarding headers and the
 * identity headers set (see `forward/upstream-headers.ts` and docs/proxying.md).
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { CompiledConfig } from '../config/types.js'
import type { Allow } from '../decision/decide.js'
import { forwardingHeaders } from '../forward/forwarding-headers.js'
import { upstreamHeaders } from '../forward/upstream-headers.js'

/**
 * @param raw The request as received: its socket and its own headers (a proxy library may already have
 *   removed what the client named in Connection from `headers`).
 * @param headers The headers to start from.
 */
/** What is read of the request as received. */
export interface ReceivedRequest {
  headers: IncomingHttpHeaders
  socket: { remoteAddress?: string }
}

export function proxiedHeaders (raw: ReceivedRequest, headers: IncomingHttpHeaders, config: CompiledConfig,
  decision: Allow, reissued: string | undefined): IncomingHttpHeaders {
  const { route } = decision
  const forwarding = forwardingHeaders(
    { remoteAddress: raw.socket.remoteAddress, headers: raw.headers, encrypted: 'encrypted' in raw.socket },
    config.server.forwarded,
    config.server.trustProxy
  )
  return upstreamHeaders(headers, raw.headers.connection, {
    identityHeaders: config.identityHeaders,
    stripHeaders: route.forward.stripHeaders,
    host: route.upstream.preserveHost && raw.headers.host !== undefined ? raw.headers.host : route.upstream.host,
    forwarding,
    add: decision.headers,
    authorization: route.forward.authorization,
    reissued
  })
}
