/**
 * The verified client certificate of a mutual-TLS connection, as the decision engine sees it: its RFC 8705
 * §3.1 thumbprint, base64url SHA-256 of the certificate's DER (what `cnf.x5t#S256` of a certificate-bound
 * token names). Computed once per connection, not per request: the certificate cannot change on it.
 *
 * Only a certificate the listener verified against its `clientCa` counts (`socket.authorized`): with
 * `clientCertificate: request` a client may present one that did not verify, and the request goes on
 * without any (docs/tls.md).
 */
import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { derThumbprint } from '../request/client-certificate.js'

/** What identifies a connection: the TLS socket for HTTP/1.1, the session for HTTP/2 (whose `socket` is a per-stream proxy). */
type Connection = object

const thumbprints = new WeakMap<Connection, string | null>()

interface Http2Raw { stream?: { session?: { socket?: TLSSocket } & object } }

function connectionOf (raw: IncomingMessage): { key: Connection, socket: TLSSocket } {
  const session = (raw as unknown as Http2Raw).stream?.session
  if (raw.httpVersionMajor === 2 && session?.socket !== undefined) return { key: session, socket: session.socket }
  return { key: raw.socket, socket: raw.socket as TLSSocket }
}

function compute (socket: TLSSocket): string | null {
  if (socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return null
  const der = socket.getPeerCertificate(false).raw as Buffer | undefined
  return der === undefined || der.length === 0 ? null : derThumbprint(der)
}

/** The RFC 8705 thumbprint of the verified client certificate on the request's connection, or undefined. */
export function certificateThumbprint (raw: IncomingMessage): string | undefined {
  const { key, socket } = connectionOf(raw)
  let thumbprint = thumbprints.get(key)
  if (thumbprint === undefined) {
    thumbprint = compute(socket)
    thumbprints.set(key, thumbprint)
  }
  return thumbprint ?? undefined
}
