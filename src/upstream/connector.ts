/**
 * How the HTTP/1.1 proxy (undici's pools, `http/h1-forward.ts`) opens a connection to an upstream: TCP for
 * `http://`, TLS for `https://` with that upstream's own options (docs/tls.md, "TLS to upstreams"). One
 * undici agent serves every upstream, and agent-wide TLS options would be the same for all; a connector
 * is the one hook undici calls per connection with the origin it is for, so each connection gets the
 * options of the upstream at that origin in the config now in force. Connections are pooled by origin, which is why `compile.ts` requires upstreams sharing an
 * origin to share their `tls` block. A reload changes what new connections use; open ones finish as they
 * began.
 */
import { isIP, connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls'
import type { CompiledUpstreamTls } from '../config/types.js'

/** What undici asks a connector for (its `buildConnector.Options`, the part read here). */
export interface ConnectRequest {
  hostname: string
  protocol: string
  port: string
  servername?: string
}

export type ConnectCallback = (...args: [null, Socket | TLSSocket] | [Error, null]) => void

/** The TLS options of the upstream at an origin (`https://host:port`); null: the defaults. */
export type TlsForOrigin = (origin: string) => CompiledUpstreamTls | null

/** Milliseconds a TCP and TLS handshake may take, as undici's own default. */
export const CONNECT_TIMEOUT_MS = 10_000

/** `[::1]` as a URL writes it, `::1` as a socket takes it. */
export function unbracket (hostname: string): string {
  return hostname.startsWith('[') ? hostname.slice(1, -1) : hostname
}

/** The origin as `URL.origin` writes it, which is how upstreams are looked up: IPv6 bracketed, no `:443`. */
export function httpsOrigin (host: string, port: number): string {
  return `https://${isIP(host) === 6 ? `[${host}]` : host}${port === 443 ? '' : `:${port}`}`
}

/**
 * The `tls.connect` options for an upstream host: verification on unless the config turned it off,
 * SNI from `servername` or the URL's host (none for an IP address, which SNI cannot carry).
 */
export function tlsConnectOptions (host: string, port: number, tls: CompiledUpstreamTls | null, alpn: string[]): ConnectionOptions {
  const servername = tls?.servername ?? (isIP(host) === 0 ? host : undefined)
  return {
    host,
    port,
    servername,
    ALPNProtocols: alpn,
    rejectUnauthorized: tls?.rejectUnauthorized ?? true,
    ca: tls?.ca,
    cert: tls?.cert,
    key: tls?.key
  }
}

/** The TLS options of a request made by `https.request` (a WebSocket handshake), host and SNI from its URL. */
export function upstreamTlsOptions (tls: CompiledUpstreamTls | null): ConnectionOptions {
  return {
    rejectUnauthorized: tls?.rejectUnauthorized ?? true,
    ...(tls?.servername === undefined ? {} : { servername: tls.servername }),
    ca: tls?.ca,
    cert: tls?.cert,
    key: tls?.key
  }
}

/**
 * A TLS error's code marks a certificate or handshake problem: the upstream is reachable but cannot be
 * trusted (or would not trust scopegate's client certificate), reason `upstream_tls` (docs/responses.md).
 */
export function isTlsFailure (code: string): boolean {
  return /CERT|SIGNATURE|ALTNAME|SSL|TLS|ISSUER|SELF_SIGNED|EPROTO/.test(code) && !/TIMEOUT/.test(code)
}

/** undici's `connect` option: a connector that reads each upstream's TLS options through `tlsFor`. */
export function upstreamConnector (tlsFor: TlsForOrigin, timeoutMs = CONNECT_TIMEOUT_MS) {
  return (request: ConnectRequest, callback: ConnectCallback): void => {
    const host = unbracket(request.hostname)
    const https = request.protocol === 'https:'
    const port = request.port === '' ? (https ? 443 : 80) : Number(request.port)
    const socket: Socket = https
      ? tlsConnect(tlsConnectOptions(host, port, tlsFor(httpsOrigin(host, port)), ['http/1.1']))
      : tcpConnect({ host, port })
    let settled = false
    const settle = (err: Error | null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err !== null) {
        socket.destroy()
        callback(err, null)
        return
      }
      socket.setNoDelay(true)
      socket.setKeepAlive(true, 60_000)
      callback(null, socket)
    }
    const timer = setTimeout(() => {
      settle(Object.assign(new Error('connecting to the upstream timed out'), { code: 'UND_ERR_CONNECT_TIMEOUT' }))
    }, timeoutMs)
    socket.once(https ? 'secureConnect' : 'connect', () => { settle(null) })
    socket.once('error', (err) => { settle(err) })
  }
}
