/**
 * The Envoy ext_authz gRPC service, `envoy.service.auth.v3.Authorization/Check` (docs/istio.md), on its own
 * listener (`server.extAuthz`): Istio's `envoyExtAuthzGrpc` provider, Envoy's `ext_authz` filter with a
 * `grpc_service`, Envoy Gateway's `extAuth.grpc`. Each Check is read by `authz/check-request.ts`, judged
 * by `authz/judge-request.ts` (the engine, rate limits and re-issue of proxy mode and forward auth), and
 * answered by `check-response.ts`; each gets its decision line (`endpoint: ext_authz`).
 *
 * A Check is always answered with gRPC status OK and a CheckResponse: a request that cannot be read and an
 * unexpected failure included (a denial, 400 or 500 as docs/responses.md says; the stack only in the log).
 * A gRPC error would make Envoy apply its `failure_mode_allow`, which the operator chose for outages of
 * scopegate, not for its answers.
 *
 * The same listener serves the standard gRPC health service (`health-service.ts`), for Envoy's and
 * Kubernetes' gRPC health checks, and speaks TLS when `server.extAuthz.tls` is set (`server-credentials.ts`).
 * With tracing on, each Check is a server span named `ext_authz` (docs/istio.md#tracing).
 *
 * The vendored protos (`proto/`, see proto/README.md) are loaded once, when the listener is built.
 */
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import type { Logger } from 'pino'
import type { Deny } from '../decision/decide.js'
import type { Engine } from '../decision/engine.js'
import type { DecisionLog } from '../http/decision-log.js'
import { checkedRequest, type CheckedRequest, type CheckRequestMessage } from '../authz/check-request.js'
import { judgeRequest, type JudgeParts } from '../authz/judge-request.js'
import { unmapIPv4 } from '../net/ip-matcher.js'
import { toGatewayError, type GatewayError } from '../shared/errors.js'
import type { RequestTrace } from '../observability/request-trace.js'
import type { Tracing } from '../observability/tracing.js'
import { allowResponse, deniedResponse, type CheckResponse } from './check-response.js'
import { HealthService } from './health-service.js'

/** Where the vendored protos are, from `src/grpc/` and `dist/grpc/` alike. */
const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url))
const SERVICE_PROTO = 'envoy/service/auth/v3/external_auth.proto'
const HEALTH_PROTO = 'grpc/health/v1/health.proto'

/** A method worth writing in the decision line of a refused Check: an HTTP token of sane length. */
const LOGGED_METHOD = /^[A-Za-z-]{1,32}$/

/** Largest CheckRequest accepted, bytes: headers only (`with_request_body` off) are a few KiB. */
const MAX_MESSAGE_BYTES = 1024 * 1024

export interface ExtAuthzOptions extends JudgeParts {
  engine: () => Engine
  decisions: DecisionLog
  logger: Logger
  /** Whether the gateway is ready, as /readyz says: the health service's status. */
  ready: () => Promise<boolean>
  /** Tracing, when on: each Check in a server span, continued from a trusted peer's trace context. */
  tracing?: Tracing | null
  /** Milliseconds between readiness reads while a health watch is open; default 5 s. */
  healthWatchIntervalMs?: number
}

interface LoadedServices {
  envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } }
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } }
}

/** The Authorization and Health service definitions, from the vendored protos. */
function serviceDefinitions (): { authorization: grpc.ServiceDefinition, health: grpc.ServiceDefinition } {
  const definition = protoLoader.loadSync([SERVICE_PROTO, HEALTH_PROTO], { includeDirs: [PROTO_ROOT], keepCase: true, longs: String, enums: String, defaults: false, oneofs: true })
  const loaded = grpc.loadPackageDefinition(definition) as unknown as LoadedServices
  return { authorization: loaded.envoy.service.auth.v3.Authorization.service, health: loaded.grpc.health.v1.Health.service }
}

/** The W3C trace context in a carrier, by lower-case name: what the tracing propagator reads. */
function traceContext (get: (name: string) => string | undefined): Record<string, string> {
  const carrier: Record<string, string> = {}
  for (const name of ['traceparent', 'tracestate']) {
    const value = get(name)
    if (value !== undefined) carrier[name] = value
  }
  return carrier
}

/** A gRPC metadata value that is text (a `-bin` key's is bytes, never a trace context). */
function metadataText (metadata: grpc.Metadata, name: string): string | undefined {
  const value = metadata.get(name)[0]
  return typeof value === 'string' ? value : undefined
}

/** A header's first value in the original request's raw headers. */
function headerText (rawHeaders: readonly string[], name: string): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i] === name) return rawHeaders[i + 1]
  return undefined
}

function refused (error: GatewayError): Deny {
  return { allowed: false, error, route: null, path: null, token: null, scopes: [] }
}

/** The address of a gRPC peer (`127.0.0.1:5000`, `[::1]:5000`), without its port. */
export function peerAddress (peer: string): string {
  const bare = peer.replace(/^ipv[46]:/, '')
  if (bare.startsWith('[')) return unmapIPv4(bare.slice(1, bare.indexOf(']')))
  const colon = bare.lastIndexOf(':')
  return unmapIPv4(colon === -1 ? bare : bare.slice(0, colon))
}

export class ExtAuthzServer {
  private readonly server: grpc.Server
  private readonly options: ExtAuthzOptions
  private readonly health: HealthService
  private port: number | null = null

  constructor (options: ExtAuthzOptions) {
    this.options = options
    this.server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES })
    const definitions = serviceDefinitions()
    this.health = new HealthService({ ready: options.ready, watchIntervalMs: options.healthWatchIntervalMs })
    this.server.addService(definitions.health, this.health.handlers())
    this.server.addService(definitions.authorization, {
      Check: (call: grpc.ServerUnaryCall<CheckRequestMessage, CheckResponse>, callback: grpc.sendUnaryData<CheckResponse>) => {
        this.check(call.request, call.getPeer(), call.metadata).then((answer) => callback(null, answer), (err: unknown) => {
          // check() catches everything; this is the last line of defence, still an answer and not INTERNAL.
          callback(null, deniedResponse(toGatewayError(err), null, undefined))
        })
      }
    })
  }

  /** Whether the listener is open (for /readyz). */
  get listening (): boolean {
    return this.port !== null
  }

  /** The port bound, while listening. */
  get boundPort (): number | null {
    return this.port
  }

  /** Opens the listener, plaintext h2c unless given TLS credentials; resolves with the port bound. */
  async listen (host: string, port: number, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
    this.port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, bound) => { if (err === null) resolve(bound); else reject(err) })
    })
    return this.port
  }

  /** Shutdown has begun: the health watches hear NOT_SERVING now, while Checks are still answered. */
  draining (): void {
    void this.health.refresh()
  }

  /**
   * Stops accepting, lets the Checks under way finish, and cuts what is left at `deadline` (milliseconds
   * since the epoch). Never throws.
   */
  async close (deadline: number): Promise<void> {
    if (this.port === null) return
    this.port = null
    // Watches never end by themselves: without this, a graceful shutdown would wait for the deadline.
    this.health.close()
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { this.server.forceShutdown(); resolve() }, Math.max(0, deadline - Date.now()))
      this.server.tryShutdown(() => { clearTimeout(timer); resolve() })
    })
  }

  /** The Check's spans, when tracing is on; `rawHeaders` and `method` are the original request's, when it could be read. */
  private traceOf (metadata: grpc.Metadata, rawHeaders: readonly string[], peerTrusted: boolean, method: string | null): RequestTrace | null {
    const tracing = this.options.tracing ?? null
    if (tracing === null) return null
    const call = traceContext((name) => metadataText(metadata, name))
    const request = traceContext((name) => headerText(rawHeaders, name))
    // `_OTHER`: OpenTelemetry's method for one that is not known, here one that could not be read.
    return tracing.checkRequest(call, request, peerTrusted, method ?? '_OTHER')
  }

  /** One Check, answered whatever happens. */
  private async check (message: CheckRequestMessage, peer: string, metadata: grpc.Metadata): Promise<CheckResponse> {
    const startedAt = process.hrtime.bigint()
    const engine = this.options.engine()
    const from = peerAddress(peer)
    const trusted = engine.config.server.trustProxy
    const peerTrusted = trusted !== null && trusted.has(from)
    let request: CheckedRequest
    try {
      request = checkedRequest(message, from, peerTrusted)
    } catch (err) {
      const refusal = toGatewayError(err)
      // The method is logged only when it is one: a refused Check may carry anything there, of any length.
      const named = message.attributes?.request?.http?.method
      const method = named !== undefined && LOGGED_METHOD.test(named) ? named : null
      const trace = this.traceOf(metadata, [], peerTrusted, method)
      trace?.finish(refusal.status, refused(refusal), false)
      this.options.decisions.recordCheck({ decision: null, method, status: refusal.status, startedAt, refusal, trace: idsOf(trace) })
      return deniedResponse(refusal, null, undefined)
    }
    const trace = this.traceOf(metadata, request.rawHeaders, peerTrusted, request.input.method)
    try {
      return await this.judge(engine, request, startedAt, trace)
    } catch (err) {
      const error: GatewayError = toGatewayError(err)
      this.options.logger.error({ err: { message: error.detail ?? error.message } }, 'ext_authz decision failed')
      trace?.finish(error.status, refused(error), false)
      this.options.decisions.recordCheck({ decision: refused(error), method: request.input.method, status: error.status, startedAt, trace: idsOf(trace) })
      return deniedResponse(error, null, undefined)
    }
  }

  /** A Check whose request could be read: judged, recorded, traced, answered. */
  private async judge (engine: Engine, request: CheckedRequest, startedAt: bigint, trace: RequestTrace | null): Promise<CheckResponse> {
    const { input } = request
    const verdict = await judgeRequest(engine, input, request.cors, this.options, trace === null ? undefined : trace.verifying.bind(trace))
    const ids = idsOf(trace)
    if (verdict.kind === 'deny') {
      const { decision } = verdict
      trace?.finish(decision.error.status, decision, false)
      this.options.decisions.recordCheck({ decision, method: input.method, status: decision.error.status, startedAt, trace: ids })
      return deniedResponse(decision.error, decision.route, request.cors.origin)
    }
    trace?.finish(200, verdict.decision, false)
    this.options.decisions.recordCheck({ decision: verdict.decision, method: input.method, status: 200, startedAt, preflight: verdict.kind === 'preflight', trace: ids })
    return verdict.kind === 'preflight'
      ? allowResponse(request, verdict.decision, engine.config, undefined, verdict.cors)
      : allowResponse(request, verdict.decision, engine.config, verdict.reissued)
  }
}

/** The ids a decision line names its trace by. */
function idsOf (trace: RequestTrace | null): { traceId: string, spanId: string } | undefined {
  return trace === null ? undefined : { traceId: trace.traceId, spanId: trace.spanId }
}
