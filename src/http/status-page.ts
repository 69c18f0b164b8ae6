/**
 * The status page on the admin listener (docs/observability.md#status-page): `GET /status`, one HTML
 * document, and `GET /status/events`, the live feed of denials as server-sent events.
 *
 * Off by default: while `server.admin.status` is not enabled both paths answer the admin listener's
 * ordinary 404. When on, `status-access.ts` decides who gets in. Every answer is `no-store`; the page
 * carries a strict Content-Security-Policy (see `status-html.ts`). Each live feed is bounded: at most
 * `maxConnections` at once, and a client that does not read (more than MAX_BUFFERED_BYTES waiting) is
 * disconnected rather than buffered for; EventSource reconnects by itself. Every feed is closed when the
 * listener closes, so shutdown never waits on one.
 */
import type { ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { CompiledStatusPage } from '../config/types.js'
import type { DenialFeed } from '../observability/denial-feed.js'
import { renderStatusPage, STATUS_CSP } from '../observability/status-html.js'
import type { StatusSnapshot } from '../observability/status-snapshot.js'
import { FORWARDING_HEADERS, statusAccess } from './status-access.js'

export interface StatusPageOptions {
  /** The settings of the config in force; null: the page is off. */
  settings: () => CompiledStatusPage | null
  /** This process's snapshot, or the process group's (a cluster worker asks the primary). */
  snapshot: () => Promise<StatusSnapshot>
  feed: DenialFeed
  /** Milliseconds between two heartbeats on a live feed; default HEARTBEAT_MS. */
  heartbeatMs?: number
}

/** Milliseconds between heartbeats: below the usual 60 s idle timeout of proxies and load balancers. */
export const HEARTBEAT_MS = 15_000
/** Bytes a live feed may have waiting for a slow reader before it is closed. */
export const MAX_BUFFERED_BYTES = 256 * 1024
/** Milliseconds EventSource waits before reconnecting (the `retry` field). */
const RECONNECT_MS = 5000
/** Seconds sent as Retry-After when every live feed slot is taken. */
const BUSY_RETRY_AFTER = 5

const COMMON_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY'
} as const

const REALM = 'scopegate status'

function refuse (reply: FastifyReply, status: number, error: string, description: string, extra: Record<string, string> = {}): FastifyReply {
  return reply.code(status).headers({ ...COMMON_HEADERS, 'content-type': 'application/json; charset=utf-8', ...extra })
    .send(JSON.stringify({ error, error_description: description }))
}

/** Answers the refusal and returns false, or returns true when the request may see the page. */
function admitted (request: FastifyRequest, reply: FastifyReply, settings: CompiledStatusPage): boolean {
  const access = statusAccess({
    peer: request.raw.socket.remoteAddress ?? '',
    authorization: request.headers.authorization,
    forwarded: FORWARDING_HEADERS.some((name) => request.headers[name] !== undefined)
  }, settings.token)
  if (access.allowed) return true
  // Both schemes are offered: Basic makes a browser ask for the token (any user name, the token as password).
  const challenge = `Bearer realm="${REALM}"${access.error === 'invalid_token' ? ', error="invalid_token"' : ''}, Basic realm="${REALM}", charset="UTF-8"`
  void refuse(reply, access.status, access.error, access.description, access.challenge ? { 'www-authenticate': challenge } : {})
  return false
}

/** One live feed: a server-sent event per denial, a heartbeat comment, closed on any sign of trouble. */
function openFeed (res: ServerResponse, options: StatusPageOptions, feeds: Set<() => void>): void {
  res.writeHead(200, { ...COMMON_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no' })
  res.write(`retry: ${RECONNECT_MS}\n\n`)
  let closed = false
  const close = (): void => {
    if (closed) return
    closed = true
    unsubscribe()
    clearInterval(heartbeat)
    feeds.delete(close)
    res.end()
  }
  // The page turned off by a reload, or a reader too slow to keep up: the feed ends.
  const send = (chunk: string): void => {
    if (options.settings() === null || res.writableLength > MAX_BUFFERED_BYTES) close()
    else res.write(chunk)
  }
  // JSON.stringify escapes line breaks, so one entry is always one `data:` line.
  const unsubscribe = options.feed.subscribe((entry) => { send(`event: denial\ndata: ${JSON.stringify(entry)}\n\n`) })
  const heartbeat = setInterval(() => { send(': heartbeat\n\n') }, options.heartbeatMs ?? HEARTBEAT_MS)
  heartbeat.unref()
  feeds.add(close)
  res.on('close', close)
}

/** The admin plugin: registers `/status` and `/status/events`. */
export function statusPage (options: StatusPageOptions): (app: FastifyInstance) => void {
  /** The close function of every live feed open on this listener. */
  const feeds = new Set<() => void>()
  return (app) => {
    app.addHook('preClose', (done) => {
      for (const close of [...feeds]) close()
      done()
    })

    app.get('/status', async (request, reply) => {
      const settings = options.settings()
      if (settings === null) return reply.callNotFound()
      if (!admitted(request, reply, settings)) return reply
      let snapshot: StatusSnapshot
      try {
        snapshot = await options.snapshot()
      } catch (err) {
        request.log.error({ err: { message: (err as Error).message } }, 'status page unavailable')
        return refuse(reply, 503, 'temporarily_unavailable', 'the status cannot be read right now', { 'retry-after': '1' })
      }
      return reply.headers({ ...COMMON_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': STATUS_CSP })
        .send(renderStatusPage(snapshot, settings.recentDenials))
    })

    // No HEAD: it would open a feed that can never carry anything.
    app.get('/status/events', { exposeHeadRoute: false }, async (request, reply) => {
      const settings = options.settings()
      if (settings === null) return reply.callNotFound()
      if (!admitted(request, reply, settings)) return reply
      if (feeds.size >= settings.maxConnections) {
        return refuse(reply, 503, 'temporarily_unavailable', 'too many live status feeds are open', { 'retry-after': String(BUSY_RETRY_AFTER) })
      }
      reply.hijack()
      openFeed(reply.raw, options, feeds)
    })
  }
}
