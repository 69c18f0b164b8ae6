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
import { clientIp } from '../request/client-ip.js'
import { authorizationValues, extractToken } from '../request/extract-token.js'
import { DPOP_SCHEME, dpopProofValues } from '../request/extract-dpop-token.js'
import { joinUpstreamPath, normalizeTarget } from '../request/normalize-path.js'
import { subprotocolToken, type SubprotocolToken } from '../request/subprotocol-token.js'
import { deny, toGatewayError, type GatewayError } from '../shared/errors.js'
import type { DecisionLog, UpgradeRecord } from './decision-log.js'
import type { OpenWebSockets } from './open-websockets.js'
import { proxyOrigin, upstreamError } from './proxy-server.js'
import { proxiedHeaders } from './proxied-headers.js'
import { rawErrorResponse } from './reply-error.js'
import { CLOSE_GRACE_MS, WebSocketTunnel } from './websocket-tunnel.js'

export interface UpgradeOptions {
  engine: () => Engine
  decisions: DecisionLog
  /** The re-issued token for an allowed request, when its route re-issues (see `Reissuer.forDecision`). */
  reissue: (decision: Allow) => Promise<string> | undefined
  websockets: OpenWebSockets
  /** Serves a request as plain HTTP: the proxy server's own request listener. */
  serveHttp: (request: IncomingMessage, response: ServerResponse) => void
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
function routeOf (engine: Engine, method: string, target: string): CompiledRoute | null {
  try {
    return engine.routes.match(method, normalizeTarget(target).path)
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

/** The proxy server's `upgrade` listener. */
export function handleUpgrade (options: UpgradeOptions): (request: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { decisions, websockets } = options
  return (request, socket, head) => {
    // Node removed its own listeners when it handed the socket over: an error left unheard would be fatal.
    socket.on('error', () => { socket.destroy() })
    if (!isWebSocket(request.headers.upgrade) && !hasBody(request)) {
      serveAsHttp(request, socket, options.serveHttp)
      return
    }
    const startedAt = process.hrtime.bigint()
    const method = request.method ?? 'GET'
    // Nothing is read until the tunnel is open: what the client sends early waits in the socket.
    socket.pause()
    const record = (upgrade: Omit<UpgradeRecord, 'method' | 'startedAt'>): void => {
      decisions.recordUpgrade({ ...upgrade, method, startedAt })
    }
    const refuse = (error: GatewayError, decision: Decision | null): void => {
      writeError(socket, error)
      record({ decision, status: error.status, refusal: decision?.allowed === false ? undefined : error })
    }

    const engine = options.engine()
    if (request.headers.host === undefined && request.httpVersion === '1.1') { // RFC 9112 §3.2: 400
      refuse(deny.badRequest('request_malformed', 'the request has no Host header'), null)
      return
    }
    const target = request.url ?? ''
    let authorization = authorizationValues(request.rawHeaders)
    let offered: SubprotocolToken
    try {
      offered = subprotocolToken(request.headers['sec-websocket-protocol'])
      if (offered.token !== null) authorization = withSubprotocolToken(routeOf(engine, method, target), authorization, offered.token)
    } catch (err) {
      refuse(toGatewayError(err), null)
      return
    }
    const input: DecisionInput = {
      method,
      target,
      authorization,
      clientIp: clientIp(request.socket.remoteAddress, request.headers['x-forwarded-for'], engine.config.server.trustProxy),
      // A DPoP-scheme token's proof is checked on the handshake as on any request (docs/dpop.md).
      dpop: DPOP_SCHEME.test(request.headers.authorization ?? '')
        ? { proofs: dpopProofValues(request.rawHeaders), origin: proxyOrigin(request, engine.config.server.trustProxy) }
        : undefined
    }

    const connect = (decision: Allow, reissued: string | undefined): void => {
      if (socket.destroyed) return
      const { route } = decision
      const { origin, basePath } = route.upstream
      // A token from the subprotocol is the request's Authorization from here on: `forward.authorization` applies.
      const clientHeaders: IncomingHttpHeaders = offered.token === null ? request.headers : { ...request.headers, authorization: authorization[0] }
      const headers = proxiedHeaders(request, clientHeaders, engine.config, decision, reissued)
      // The handshake's own headers, which upstreamHeaders drops as hop-by-hop.
      headers.connection = 'Upgrade'
      headers.upgrade = request.headers.upgrade
      if (offered.token !== null) {
        if (offered.protocols.length === 0) delete headers['sec-websocket-protocol']
        else headers['sec-websocket-protocol'] = offered.protocols.join(', ')
      }
      const url = origin + joinUpstreamPath(basePath, route.path, decision.path, route.stripPrefix) + decision.query
      const upstreamRequest = (origin.startsWith('https:') ? https : http).request(url, {
        method, headers, agent: false, timeout: route.upstream.timeoutMs
      })
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
        websockets.add(new WebSocketTunnel(socket, upstreamSocket, head, upstreamHead), decision, input)
        record({ decision, status: 101 })
      })
      upstreamRequest.end()
    }

    const proceed = (decision: Decision): void => {
      if (!decision.allowed) {
        refuse(decision.error, decision)
        return
      }
      if (!decision.route.websocket.enabled || !isWebSocket(request.headers.upgrade)) {
        refuse(upgradeNotAllowed(), decision)
        return
      }
      const reissuing = options.reissue(decision)
      if (reissuing === undefined) connect(decision, undefined)
      else reissuing.then((token) => { connect(decision, token) }, (err: unknown) => { refuse(toGatewayError(err), decision) })
    }
    const decided = decideKnown(engine, input)
    if (decided instanceof PendingDecision) void decidePending(decided).then(proceed)
    else proceed(decided)
  }
}
