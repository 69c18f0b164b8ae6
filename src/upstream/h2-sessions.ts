/**
 * HTTP/2 sessions to `http2: true` upstreams (docs/grpc.md): one per origin, opened on first use and
 * shared by every request to it, as HTTP/2 intends (streams are multiplexed, so one connection serves
 * every concurrent call). `https://` upstreams get h2 by ALPN with the upstream's TLS options
 * (`connector.ts`); `http://` ones get h2c with prior knowledge, as gRPC servers speak it in a cluster.
 *
 * A session that closes, fails or is told to go away is forgotten, so the next request opens a new one.
 * A reload compiles new TLS options: the next request opens a session with them, and the old session
 * is closed gracefully (its streams finish). An idle session is closed after `IDLE_MS`.
 */
import { connect, type ClientHttp2Session } from 'node:http2'
import type { CompiledUpstream, CompiledUpstreamTls } from '../config/types.js'
import { tlsConnectOptions, unbracket } from './connector.js'

/** Milliseconds without any stream after which a session is closed. */
export const IDLE_MS = 60_000

interface OpenSession {
  session: ClientHttp2Session
  /** The options it was opened with: another object (a reload) means a new session. */
  tls: CompiledUpstreamTls | null
}

export class H2Sessions {
  private readonly open = new Map<string, OpenSession>()

  /** The live session to `upstream`'s origin, opened if there is none. Never throws: a failure surfaces on the stream. */
  session (upstream: CompiledUpstream): ClientHttp2Session {
    const known = this.open.get(upstream.origin)
    if (known !== undefined && known.tls === upstream.tls && !known.session.closed && !known.session.destroyed) return known.session
    if (known !== undefined) {
      this.open.delete(upstream.origin)
      known.session.close()
    }
    const session = this.connect(upstream)
    this.open.set(upstream.origin, { session, tls: upstream.tls })
    return session
  }

  private connect (upstream: CompiledUpstream): ClientHttp2Session {
    const url = new URL(upstream.origin)
    const https = url.protocol === 'https:'
    const port = url.port === '' ? (https ? 443 : 80) : Number(url.port)
    const session = https
      ? connect(upstream.origin, tlsConnectOptions(unbracket(url.hostname), port, upstream.tls, ['h2']))
      : connect(upstream.origin)
    const forget = (): void => {
      if (this.open.get(upstream.origin)?.session === session) this.open.delete(upstream.origin)
    }
    // Errors reach the streams of the session too, where they are answered; here it is only forgotten.
    session.on('error', forget)
    session.on('close', forget)
    session.on('goaway', forget)
    session.setTimeout(IDLE_MS, () => {
      forget()
      session.close()
    })
    return session
  }

  /** Closes every session: at shutdown, after the proxy listener drained. */
  closeAll (): void {
    for (const { session } of this.open.values()) session.close()
    this.open.clear()
  }
}
