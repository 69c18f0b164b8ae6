/**
 * The proxy listener: every request is decided in `onRequest`, before any body byte is read; a denial
 * is answered there and never reaches the upstream. An allowed request is streamed upstream by
 * @fastify/reply-from to the normalized path (the one that was authorized), with client copies of
 * identity headers stripped and scopegate's added. Routing is scopegate's own (exact, then longest
 * segment-aware prefix), so one catch-all Fastify route serves every path.
 */
import type { IncomingHttpHeaders } from 'node:http'
import fastifyReplyFrom from '@fastify/reply-from'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { FastifyBaseLogger as Logger } from 'fastify'
import { decide, type Allow, type Decision } from '../decide.js'
import type { Engine } from '../engine.js'
import { GatewayError, deny, toGatewayError } from '../errors.js'
import { upstreamHeaders } from '../forward/upstream-headers.js'
import { clientIp } from '../request/client-ip.js'
import { authorizationValues } from '../request/extract-token.js'
import { joinUpstreamPath } from '../request/normalize-path.js'
import { handleClientError } from './client-errors.js'
import { sendError } from './reply-error.js'
import type { DecisionLog } from './decision-log.js'

declare module 'fastify' {
  interface FastifyRequest {
    decision: Decision | null
    /** The engine the decision was made under: a reload mid-request does not change what applies to it. */
    engine: Engine | null
    startedAt: bigint
  }
}

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
    clientErrorHandler: handleClientError,
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

  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    const error = frameworkErrorToGatewayError(err)
    if (error.status >= 500) request.log.error({ err: { message: err.message, code: (err as { code?: string }).code } }, 'request failed')
    sendError(reply, error)
  })
  app.setNotFoundHandler((_request, reply) => { sendError(reply, deny.noRoute()) })

  app.addHook('onResponse', (request, reply, done) => { decisions.record(request, reply); done() })

  app.all('*', {
    onRequest: async (request: FastifyRequest, reply: FastifyReply) => {
      request.startedAt = process.hrtime.bigint()
      const current = engine()
      request.engine = current
      const raw = request.raw
      if (raw.headers.host === undefined && raw.httpVersion === '1.1') { // RFC 9112 §3.2: 400
        return sendError(reply, deny.badRequest('request_malformed', 'the request has no Host header'))
      }
      const ip = clientIp(raw.socket.remoteAddress, raw.headers['x-forwarded-for'], current.config.server.trustProxy)
      const decision = await decide(current, {
        method: raw.method ?? 'GET',
        target: raw.url ?? '',
        authorization: authorizationValues(raw.rawHeaders),
        clientIp: ip
      })
      request.decision = decision
      if (!decision.allowed) return sendError(reply, decision.error)
    }
  }, async (request, reply) => {
    const decision = request.decision as Allow
    const { route } = decision
    const reissuing = options.reissue(decision)
    const reissued = reissuing === undefined ? undefined : await reissuing
    const identityHeaders = (request.engine ?? engine()).config.identityHeaders
    const connection = request.raw.headers.connection
    // The base path goes through joinUpstreamPath too, so stripping the whole prefix gives `/api`, not `/api/`.
    const { origin, basePath } = route.upstream
    const url = origin + joinUpstreamPath(basePath, route.path, decision.path, route.stripPrefix)
    return reply.from(url, {
      timeout: route.upstream.timeoutMs,
      // Never re-send: reply-from's default retries a GET answered 503 ten times (reading Retry-After as ms).
      retryDelay: () => null,
      queryString: () => decision.query.slice(1),
      rewriteRequestHeaders: (_req, headers: IncomingHttpHeaders) => upstreamHeaders(headers, connection, {
        identityHeaders, add: decision.headers, authorization: route.forward.authorization, reissued
      }),
      onError: (errorReply, { error }) => {
        const failure = upstreamError(error as Error, route.upstream.id)
        decisions.upstreamFailed(request, failure)
        sendError(errorReply as unknown as FastifyReply, failure)
      }
    })
  })

  return app
}
