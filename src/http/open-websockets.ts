/**
 * The WebSockets open on the proxy listener, each kept only as long as it stays authorized: a socket
 * outlives the handshake that was decided, so the decision is revisited when it can change.
 *
 * - At the token's `exp` (plus the issuer's clock tolerance, the same bound verification allows), the
 *   WebSocket is closed with 1008 (`route.websocket.closeOnExpiry`).
 * - On a config reload, each is decided again, with the same request, against the new engine; one the new
 *   config denies, or sends to a route that refuses upgrades or to another upstream, is closed with 1008
 *   (`route.websocket.closeOnReload`).
 * - On shutdown, every one is closed with 1001.
 *
 * Audit-mode routes let denied handshakes through, so they close nothing here either.
 */
import type { Logger } from 'pino'
import type { CompiledRoute } from '../config/types.js'
import { PendingDecision, decideKnown, decidePending, type Allow, type Decision, type DecisionInput } from '../decision/decide.js'
import type { Engine } from '../decision/engine.js'
import { CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION } from './websocket-frames.js'
import type { WebSocketTunnel } from './websocket-tunnel.js'

/** setTimeout's longest delay, in milliseconds; a later expiry re-arms. */
const MAX_TIMER_MS = 2 ** 31 - 1

export interface OpenWebSocketsOptions {
  logger: Logger
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number
}

interface OpenWebSocket {
  tunnel: WebSocketTunnel
  route: CompiledRoute
  /** The handshake as decided, to decide again on reload. It holds the token: never logged. */
  input: DecisionInput
  subject: string | null
  timer: NodeJS.Timeout | null
}

export class OpenWebSockets {
  private readonly open = new Set<OpenWebSocket>()
  private readonly logger: Logger
  private readonly now: () => number
  private shuttingDown = false

  constructor (options: OpenWebSocketsOptions) {
    this.logger = options.logger
    this.now = options.now ?? Date.now
  }

  get size (): number {
    return this.open.size
  }

  /** Watches a tunnel opened under `decision` until both its sockets close. */
  add (tunnel: WebSocketTunnel, decision: Allow, input: DecisionInput): void {
    const { route, token } = decision
    const entry: OpenWebSocket = { tunnel, route, input, subject: token?.subject ?? null, timer: null }
    this.open.add(entry)
    if (route.websocket.closeOnExpiry && token !== null && decision.audit === null && route.mode === 'enforce') {
      this.expireAt(entry, (token.expiresAt + token.issuer.clockToleranceSec) * 1000)
    }
    tunnel.done.then(() => {
      if (entry.timer !== null) clearTimeout(entry.timer)
      this.open.delete(entry)
    })
    if (this.shuttingDown) this.close(entry, CLOSE_GOING_AWAY, 'gateway shutting down', 'shutdown')
  }

  /** Decides every open WebSocket again under `engine` (just swapped in by a reload). */
  recheck (engine: Engine): void {
    for (const entry of this.open) {
      if (!entry.route.websocket.closeOnReload || entry.route.mode !== 'enforce' || entry.tunnel.closing) continue
      const decided = decideKnown(engine, entry.input)
      const judge = (decision: Decision): void => {
        const reason = revoked(entry.route, decision)
        if (reason !== null) this.close(entry, CLOSE_POLICY_VIOLATION, 'authorization revoked', reason)
      }
      if (decided instanceof PendingDecision) void decidePending(decided).then(judge)
      else judge(decided)
    }
  }

  /**
   * Closes every open WebSocket (1001), and any opened from now on. Resolves when all are closed, or at
   * `deadline` (milliseconds since the epoch, on the wall clock), when those left are cut.
   */
  async closeAll (deadline: number): Promise<void> {
    this.shuttingDown = true
    const done: Array<Promise<void>> = []
    for (const entry of this.open) {
      this.close(entry, CLOSE_GOING_AWAY, 'gateway shutting down', 'shutdown')
      done.push(entry.tunnel.done)
    }
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, Math.max(0, deadline - Date.now())) })
    await Promise.race([Promise.all(done), late])
    clearTimeout(timer)
    for (const entry of this.open) entry.tunnel.destroy()
  }

  private expireAt (entry: OpenWebSocket, at: number): void {
    const delay = at - this.now()
    if (delay <= 0) {
      this.close(entry, CLOSE_POLICY_VIOLATION, 'token expired', 'token_expired')
      return
    }
    entry.timer = setTimeout(() => {
      entry.timer = null
      this.expireAt(entry, at)
    }, Math.min(delay, MAX_TIMER_MS))
    entry.timer.unref()
  }

  private close (entry: OpenWebSocket, code: number, text: string, reason: string): void {
    if (entry.tunnel.closing || !this.open.has(entry)) return
    this.logger.info({ route: entry.route.id, sub: entry.subject, code, reason }, 'websocket closed by the gateway')
    entry.tunnel.close(code, text)
  }
}

/** Why a re-decided WebSocket may no longer stay open, or null when it may. */
function revoked (before: CompiledRoute, decision: Decision): string | null {
  if (!decision.allowed) return decision.error.reason
  if (!decision.route.websocket.enabled) return 'upgrade_not_allowed'
  if (decision.route.upstream.base !== before.upstream.base) return 'upstream_changed'
  return null
}
