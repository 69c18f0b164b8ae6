/**
 * `Upgrade` requests on the proxy listener (docs/proxying.md, "WebSockets and Upgrade"). Node hands them
 * to the server's `upgrade` event with the raw socket, outside Fastify's hooks, so this module is their
 * `onRequest`: the handshake is decided by the same `decide()` as any request (normalization, route,
 * token, policy), and answered on the socket. A denial is the usual JSON error response, with the same
 * status, headers and body, and the socket is closed: never a 101, nothing sent upstream.
 *
 * An allowed handshake needs a route that opted in (`websocket.enabled`) and `Upgrade: websocket`. Any other
 * upgrade (`h2c`…) is served as plain HTTP with the upgrade ignored, or, if it has a body (which Node's
 * parser does not read for an upgrade), refused 400 `invalid_request`. It is sent to the route's upstream at
 * the normalized path, with the identity headers of `upstreamHeaders` and the handshake's own
 * (`Upgrade`, `Connection`, `Sec-WebSocket-*`), which are hop-by-hop for every other request. The
 * upstream's answer is relayed: a 101 opens a tunnel (`websocket-tunnel.ts`) watched by
 * `OpenWebSockets`; any other response is passed on and the socket closed; no answer is a 502 or 504.
 *
 * An allowed handshake spends the route's rate limit as a proxied request does (docs/rate-limits.md), with
 * the same key: one WebSocket is one request of the bucket, however long it stays open. A limited handshake
 * is answered 429 with `Retry-After` and the RateLimit fields, before anything is sent upstream.
 *
 * A route may also take the token from `Sec-WebSocket-Protocol` (`websocket.subprotocolToken`, see
 * `subprotocol-token.ts`), for browsers, which cannot set `Authorization` on a WebSocket.
 */
import http, { STATUS_CODES, ServerResponse, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import https from 'node:https'
import type { Duplex } from 'node:stream'
import type { CompiledRoute } from '../config/types.js'
import { PendingDecision, decideKnown, decidePending, type Allow, type Decision, type DecisionInput } from '../decision/decide.js'
import type { Engine } from '../decision/engine.js'
import { HOP_BY_HOP } from '../forward/upstream-headers.js'
import { checkHost } from '../request/check-host.js'
import { clientIp } from '../request/client-ip.js'
import { authorizationValues, extractToken } from '../request/extract-token.js'
import { DPOP_SCHEME, dpopProofValues } from '../request/extract-dpop-token.js'
import { joinUpstreamPath, normalizeTarget } from '../request/normalize-path.js'
import { subprotocolToken, type SubprotocolToken } from '../request/subprotocol-token.js'
import { requestHost } from '../routing/match-host.js'
import type { RateLimiter } from '../limits/rate-limiter.js'
import { deny, toGatewayError, type GatewayError } from '../shared/errors.js'
import type { DecisionLog, UpgradeRecord } from './decision-log.js'
import type { OpenWebSockets } from './open-websockets.js'
import { proxyOrigin, upstreamError } from './proxy-server.js'
import { proxiedHeaders } from './proxied-headers.js'
import { rawErrorResponse } from './reply-error.js'
import { CLOSE_GRACE_MS, WebSocketTunnel } from './websocket-tunnel.js'
import { upstreamTlsOptions } from '../upstream/connector.js'

export interface UpgradeOptions {
  engine: () => Engine
  decisions: DecisionLog
  /** The re-issued token for an allowed request, when its route re-issues (see `Reissuer.forDecision`). */
  reissue: (decision: Allow) => Promise<string> | undefined
  websockets: OpenWebSockets
  /** Routes' rate limits: an allowed handshake spends one request of its route's (docs/rate-limits.md#websockets). */
  limits: RateLimiter
  /** Serves a request as plain HTTP: the proxy server's own request listener. */
  serveHttp: (request: IncomingMessage, response: ServerResponse) => void
  /** The verified client certificate's RFC 8705 thumbprint, for mTLS listeners (`client-certificate.ts`). */
  certificateThumbprint?: (request: IncomingMessage) => string | undefined
}

const upgradeNotAllowed = (): GatewayError =>
  deny.badRequest('upgrade_not_allowed', 'the protocol upgrade is not accepted on this route')

const subprotocolTokenRefused = (): GatewayError =>
  deny.badRequest('authorization_malformed', 'this route does not accept a token in Sec-WebSocket-Protocol')

const tokensDiffer = (): GatewayError =>
  deny.badRequest('authorization_conflict', 'the Authorization header and Sec-WebSocket-Protocol carry different tokens')

/** True for `Upgrade: websocket`, the one protocol the proxy listener switches to. */
function isWebSocket (upgrade: string | undefined): boolean {
  return upgrade !== undefined && upgrade.trim().toLowerCase() === 'websocket'
}

/** True when a request announces a body, which an upgrade request's parser leaves unread. */
function hasBody (request: IncomingMessage): boolean {
  const length = request.headers['content-length']
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}

/**
 * Serves an upgrade request that asks for another protocol (`h2c`, which curl and Java's HttpClient offer
 * on `http://` URLs) as the plain HTTP request it also is, ignoring the upgrade as RFC 9110 §7.8 lets a
 * server do. Node has already detached its parser, so the response is written on the socket by a
 * ServerResponse of our own, and the connection closes after it.
 */
function serveAsHttp (request: IncomingMessage, socket: Duplex, serveHttp: UpgradeOptions['serveHttp']): void {
  const response = new ServerResponse(request)
  response.shouldKeepAlive = false
  response.assignSocket(socket as Parameters<ServerResponse['assignSocket']>[0])
  response.on('finish', () => {
    response.detachSocket(socket as Parameters<ServerResponse['detachSocket']>[0])
    endWith(socket)
  })
  serveHttp(request, response)
}

/** The route a target goes to, to know where its token may come from; null when `decide()` will refuse it. */
function routeOf (engine: Engine, method: string, target: string, host: string | undefined): CompiledRoute | null {
  try {
    return engine.routes.match(method, normalizeTarget(target).path, requestHost(host))
  } catch {
    return null
  }
}

/**
 * The Authorization values to decide on when a token came in `Sec-WebSocket-Protocol`: that token, unless
 * the route does not take it there (400), or an Authorization header carries another one (400).
 */
function withSubprotocolToken (route: CompiledRoute | null, authorization: string[], token: string): string[] {
  if (route === null) return authorization
  if (!route.websocket.subprotocolToken) throw subprotocolTokenRefused()
  if (authorization.length === 0) return [`Bearer ${token}`]
  if (extractToken(authorization) !== token) throw tokensDiffer()
  return authorization
}

/** Ends a socket after `text`, reading (and dropping) what the client still sends, cut after a grace period. */
function endWith (socket: Duplex, text?: string): void {
  socket.resume()
  if (text === undefined) socket.end()
  else socket.end(text)
  setTimeout(() => { socket.destroy() }, CLOSE_GRACE_MS).unref()
}

function writeError (socket: Duplex, error: GatewayError): void {
  endWith(socket, rawErrorResponse(error, STATUS_CODES[error.status] ?? 'Error'))
}

/** The response head as the upstream sent it, names in their case and order. */
function responseHead (response: IncomingMessage, skip: ReadonlySet<string> | null): string {
  let head = `HTTP/1.1 ${response.statusCode ?? 502} ${response.statusMessage ?? ''}\r\n`
  const raw = response.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? ''
    if (skip === null || !skip.has(name.toLowerCase())) head += `${name}: ${raw[i + 1] ?? ''}\r\n`
  }
  return head
}

/** A response other than 101 is passed on whole; the connection closes after it, which delimits the body. */
function relayResponse (socket: Duplex, response: IncomingMessage): void {
  socket.write(`${responseHead(response, HOP_BY_HOP)}connection: close\r\n\r\n`)
  response.on('data', (chunk: Buffer) => { if (!socket.write(chunk)) response.pause() })
  socket.on('drain', () => { response.resume() })
  response.on('end', () => { endWith(socket) })
  response.on('error', () => { socket.destroy() })
}

/** A WebSocket handshake on its way: what was read of it, and how to record its answer. */
interface Handshake {
  request: IncomingMessage
  socket: Duplex
  /** The bytes the client sent after the handshake, before the tunnel opened. */
  head: Buffer
  engine: Engine
  /** What the engine decides on: the Authorization values include a token taken from the subprotocol. */
  input: DecisionInput
  offered: SubprotocolToken
  record: (upgrade: Omit<UpgradeRecord, 'method' | 'startedAt'>) => void
  refuse: (error: GatewayError, decision: Decision | null) => void
}

/**
 * Reads a handshake: its Host (checked as on every request, `check-host.ts`) and its token, from
 * `Authorization` or, where the route takes it there, `Sec-WebSocket-Protocol`. Null: refused already.
 */
function readHandshake (options: UpgradeOptions, request: IncomingMessage, socket: Duplex, head: Buffer): Handshake | null {
  const startedAt = process.hrtime.bigint()
  const method = request.method ?? 'GET'
  const record: Handshake['record'] = (upgrade) => { options.decisions.recordUpgrade({ ...upgrade, method, startedAt }) }
  const refuse: Handshake['refuse'] = (error, decision) => {
    writeError(socket, error)
    record({ decision, status: error.status, refusal: decision?.allowed === false ? undefined : error })
  }
  const engine = options.engine()
  const target = request.url ?? ''
  let authorization = authorizationValues(request.rawHeaders)
  let offered: SubprotocolToken
  try {
    checkHost(request.rawHeaders, target, request.httpVersion)
    offered = subprotocolToken(request.headers['sec-websocket-protocol'])
    if (offered.token !== null) authorization = withSubprotocolToken(routeOf(engine, method, target, request.headers.host), authorization, offered.token)
  } catch (err) {
    refuse(toGatewayError(err), null)
    return null
  }
  const clientAddress = clientIp(request.socket.remoteAddress, request.headers['x-forwarded-for'], engine.config.server.trustProxy)
  const input: DecisionInput = {
    method,
    target,
    authorization,
    clientIp: clientAddress,
    host: request.headers.host,
    // A DPoP-scheme token's proof is checked on the handshake as on any request (docs/dpop.md).
    dpop: DPOP_SCHEME.test(request.headers.authorization ?? '')
      ? { proofs: dpopProofValues(request.rawHeaders), origin: proxyOrigin(request, engine.config.server.trustProxy) }
      : undefined,
    certificateThumbprint: options.certificateThumbprint?.(request)
  }
  return { request, socket, head, engine, input, offered, record, refuse }
}

/** The handshake's headers for the upstream: those of any proxied request, plus the handshake's own. */
function handshakeHeaders (handshake: Handshake, decision: Allow, reissued: string | undefined): IncomingHttpHeaders {
  const { request, offered, input, engine } = handshake
  // A token from the subprotocol is the request's Authorization from here on: `forward.authorization` applies.
  const clientHeaders: IncomingHttpHeaders = offered.token === null ? request.headers : { ...request.headers, authorization: input.authorization[0] }
  const headers = proxiedHeaders(request, clientHeaders, engine.config, decision, reissued)
  // Hop-by-hop for every other request, and so dropped by upstreamHeaders.
  headers.connection = 'Upgrade'
  headers.upgrade = request.headers.upgrade
  if (offered.token !== null) {
    if (offered.protocols.length === 0) delete headers['sec-websocket-protocol']
    else headers['sec-websocket-protocol'] = offered.protocols.join(', ')
  }
  return headers
}

/** Sends an allowed handshake upstream and relays the answer: a 101 opens a tunnel, anything else is passed on. */
function connectUpstream (handshake: Handshake, decision: Allow, reissued: string | undefined, websockets: OpenWebSockets): void {
  const { socket, record, input } = handshake
  if (socket.destroyed) return
  const { route } = decision
  const { origin, basePath } = route.upstream
  const url = origin + joinUpstreamPath(basePath, route.path, decision.path, route.stripPrefix) + decision.query
  const options = { method: input.method, headers: handshakeHeaders(handshake, decision, reissued), agent: false, timeout: route.upstream.timeoutMs }
  // wss to an https upstream: the same TLS options as its HTTP requests (docs/tls.md, "TLS to upstreams").
  const upstreamRequest = origin.startsWith('https:')
    ? https.request(url, { ...options, ...upstreamTlsOptions(route.upstream.tls) })
    : http.request(url, options)
  let settled = false
  upstreamRequest.on('timeout', () => {
    upstreamRequest.destroy(Object.assign(new Error('upstream timeout'), { code: 'HANDSHAKE_TIMEOUT', statusCode: 504 }))
  })
  upstreamRequest.on('error', (err) => {
    if (settled) return
    settled = true
    const failure = upstreamError(err, route.upstream.id)
    writeError(socket, failure)
    record({ decision, status: failure.status, failure })
  })
  socket.once('close', () => {
    if (settled) return
    // The client left before the upstream answered.
    settled = true
    upstreamRequest.destroy()
  })
  upstreamRequest.on('response', (response) => {
    settled = true
    relayResponse(socket, response)
    record({ decision, status: response.statusCode ?? 502 })
  })
  upstreamRequest.on('upgrade', (response, upstreamSocket, upstreamHead) => {
    settled = true
    upstreamSocket.setTimeout(0)
    if (socket.destroyed) {
      upstreamSocket.destroy()
      return
    }
    socket.write(`${responseHead(response, null)}\r\n`)
    websockets.add(new WebSocketTunnel(socket, upstreamSocket, handshake.head, upstreamHead), decision, input)
    record({ decision, status: 101 })
  })
  upstreamRequest.end()
}

/** The proxy server's `upgrade` listener. */
export function handleUpgrade (options: UpgradeOptions): (request: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (request, socket, head) => {
    // Node removed its own listeners when it handed the socket over: an error left unheard would be fatal.
    socket.on('error', () => { socket.destroy() })
    if (!isWebSocket(request.headers.upgrade) && !hasBody(request)) {
      serveAsHttp(request, socket, options.serveHttp)
      return
    }
    // Nothing is read until the tunnel is open: what the client sends early waits in the socket.
    socket.pause()
    const handshake = readHandshake(options, request, socket, head)
    if (handshake === null) return
    const { refuse } = handshake
    const proceed = (decision: Decision): void => {
      if (!decision.allowed) return refuse(decision.error, decision)
      if (!decision.route.websocket.enabled || !isWebSocket(request.headers.upgrade)) return refuse(upgradeNotAllowed(), decision)
      // Spent only now, by a handshake that proved its identity and would go upstream (docs/rate-limits.md).
      const limited = options.limits.check(decision.route, decision.token, handshake.input.clientIp)
      if (limited instanceof Promise) void limited.then((error) => { admit(decision, error) })
      else admit(decision, limited)
    }
    const admit = (decision: Allow, limited: GatewayError | null): void => {
      // Recorded as the proxy records a limited request: a denial with the limit's reason.
      if (limited !== null) return refuse(limited, { ...decision, allowed: false, error: limited })
      const reissuing = options.reissue(decision)
      if (reissuing === undefined) return connectUpstream(handshake, decision, undefined, options.websockets)
      reissuing.then((token) => { connectUpstream(handshake, decision, token, options.websockets) },
        (err: unknown) => { refuse(toGatewayError(err), decision) })
    }
    const decided = decideKnown(handshake.engine, handshake.input)
    if (decided instanceof PendingDecision) void decidePending(decided).then(proceed)
    else proceed(decided)
  }
}
