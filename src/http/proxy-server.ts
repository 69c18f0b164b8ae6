/**
 * The proxy listener: every request is decided in `onRequest`, before any body byte is read; a denial
 * is answered there and never reaches the upstream. An allowed request is streamed upstream by
 * @fastify/reply-from to the normalized path (the one that was authorized), with client copies of
 * identity headers stripped and scopegate's added. Routing is scopegate's own (exact, then longest
 * segment-aware prefix), so one catch-all Fastify route serves every path.
 */
import fastifyReplyFrom from '@fastify/reply-from'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { CompiledRoute } from '../config/types.js'
import { decide, type Allow, type Decision } from '../decision/decide.js'
import type { Engine } from '../decision/engine.js'
import { GatewayError, deny, toGatewayError } from '../shared/errors.js'
import { upstreamHeaders } from '../forward/upstream-headers.js'
import { clientIp } from '../request/client-ip.js'
import { authorizationValues } from '../request/extract-token.js'
import { joinUpstreamPath } from '../request/normalize-path.js'
import { clientErrorHandler } from './client-errors.js'
import { sendError } from './reply-error.js'
import type { DecisionLog } from './decision-log.js'

declare module 'fastify' {
  interface FastifyRequest {
    decision: Decision | null
    /** The engine the decision was made under: a reload mid-request does not change what applies to it. */
    engine: Engine | null
    startedAt: bigint
    /** The token sent upstream in place of the client's, when the route re-issues. */
    reissued: string | undefined
  }
}

type ForwardOptions = NonNullable<Parameters<FastifyReply['from']>[1]>

export interface ProxyServerOptions {
  engine: () => Engine
  logger: Logger
  decisions: DecisionLog
  /** The re-issued token for an allowed request, when its route re-issues (see `Reissuer.forDecision`). */
  reissue: (decision: Allow) => Promise<string> | undefined
}

function upstreamError (err: Error & { statusCode?: number, code?: string, cause?: unknown }, upstream: string): GatewayError {
  const cause = err.cause as { code?: string } | undefined
  const code = cause?.code ?? err.code ?? 'unknown'
  if (err.statusCode === 504 || /TIMEOUT/i.test(code)) {
    return new GatewayError(504, 'gateway_timeout', 'upstream_timeout', 'the upstream did not answer in time', { detail: `${upstream}: ${code}` })
  }
  const reason = /RESET|SOCKET/i.test(code) ? 'upstream_reset' : 'upstream_refused'
  return new GatewayError(502, 'bad_gateway', reason, 'the upstream could not be reached', { detail: `${upstream}: ${code}` })
}

export function frameworkErrorToGatewayError (err: Error & { statusCode?: number, code?: string }): GatewayError {
  if (err instanceof GatewayError) return err
  if (err.code === 'FST_ERR_BAD_URL' || err.statusCode === 400) return deny.badRequest('path_invalid', 'the request path is not valid')
  return toGatewayError(err)
}

export async function buildProxyServer (options: ProxyServerOptions): Promise<FastifyInstance> {
  const { engine, logger, decisions } = options
  const config = engine().config
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request: the decision line is the request's record, and a child costs a bindings
    // serialization on every request for the few lines (5xx) that would carry a request id.
    childLoggerFactory: (parent) => parent,
    requestTimeout: config.server.requestTimeoutMs,
    // requireHostHeader off: Node would answer a missing Host with its own bare 400; onRequest answers it as JSON.
    http: { maxHeaderSize: config.server.maxHeaderSize, requireHostHeader: false },
    clientErrorHandler: clientErrorHandler(decisions),
    frameworkErrors: (err, _request, reply) => { sendError(reply, frameworkErrorToGatewayError(err)) },
    return503OnClosing: false,
    forceCloseConnections: 'idle'
  })

  // Bodies are never parsed: the raw stream is handed to the proxy as it arrives.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
  await app.register(fastifyReplyFrom, { disableRequestLogging: true, undici: { connections: 128, pipelining: 1 } })

  app.decorateRequest('decision', null)
  app.decorateRequest('engine', null)
  app.decorateRequest('startedAt', 0n)
  app.decorateRequest('reissued', undefined)

  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    const error = frameworkErrorToGatewayError(err)
    if (error.status >= 500) request.log.error({ err: { message: err.message, code: (err as { code?: string }).code } }, 'request failed')
    sendError(reply, error)
  })
  app.setNotFoundHandler((_request, reply) => { sendError(reply, deny.noRoute()) })

  app.addHook('onResponse', (request, reply, done) => { decisions.record(request, reply); done() })

  /** reply-from's options for a route, built once per route (routes are compiled objects of one engine). */
  const forwarding = new WeakMap<CompiledRoute, ForwardOptions>()
  const optionsFor = (route: CompiledRoute): ForwardOptions => {
    let forward = forwarding.get(route)
    if (forward === undefined) {
      forward = {
        timeout: route.upstream.timeoutMs,
        // Never re-send: reply-from's default retries a GET answered 503 ten times (reading Retry-After as ms).
        retryDelay: () => null,
        queryString: (_search, _url, request) => (request.decision as Allow).query.slice(1),
        rewriteRequestHeaders: (request, headers) => upstreamHeaders(headers, request.raw.headers.connection, {
          identityHeaders: (request.engine ?? engine()).config.identityHeaders,
          add: (request.decision as Allow).headers,
          authorization: route.forward.authorization,
          reissued: request.reissued
        }),
        onError: (errorReply, { error }) => {
          const failure = upstreamError(error as Error, route.upstream.id)
          const failed = errorReply as unknown as FastifyReply
          decisions.upstreamFailed(failed.request, failure)
          sendError(failed, failure)
        }
      }
      forwarding.set(route, forward)
    }
    return forward
  }

  const forward = (reply: FastifyReply, decision: Allow): void => {
    const { route } = decision
    // The base path goes through joinUpstreamPath too, so stripping the whole prefix gives `/api`, not `/api/`.
    const { origin, basePath } = route.upstream
    reply.from(origin + joinUpstreamPath(basePath, route.path, decision.path, route.stripPrefix), optionsFor(route))
  }

  // Both the hook and the handler are callback-style: a request whose token the caches know is decided
  // and forwarded without a promise. Only a fresh verification or a re-issued token waits.
  app.all('*', {
    onRequest: (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
      request.startedAt = process.hrtime.bigint()
      const current = engine()
      request.engine = current
      const raw = request.raw
      if (raw.headers.host === undefined && raw.httpVersion === '1.1') { // RFC 9112 §3.2: 400
        sendError(reply, deny.badRequest('request_malformed', 'the request has no Host header'))
        return
      }
      const ip = clientIp(raw.socket.remoteAddress, raw.headers['x-forwarded-for'], current.config.server.trustProxy)
      const decided = decide(current, {
        method: raw.method ?? 'GET',
        target: raw.url ?? '',
        authorization: authorizationValues(raw.rawHeaders),
        clientIp: ip
      })
      const proceed = (decision: Decision): void => {
        request.decision = decision
        if (decision.allowed) done()
        else sendError(reply, decision.error)
      }
      if (decided instanceof Promise) decided.then(proceed, (err: unknown) => { reply.send(err) })
      else proceed(decided)
    }
  }, (request, reply) => {
    const decision = request.decision as Allow
    const reissuing = options.reissue(decision)
    if (reissuing === undefined) return forward(reply, decision)
    reissuing.then((token) => {
      request.reissued = token
      forward(reply, decision)
    }, (err: unknown) => { reply.send(err) })
  })

  return app
}
