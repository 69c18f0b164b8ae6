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
 * The vendored protos (`proto/`, see proto/README.md) are loaded once, when the listener is built.
 */
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import type { Logger } from 'pino'
import type { Engine } from '../decision/engine.js'
import type { DecisionLog } from '../http/decision-log.js'
import { checkedRequest, type CheckedRequest, type CheckRequestMessage } from '../authz/check-request.js'
import { judgeRequest, type JudgeParts } from '../authz/judge-request.js'
import { unmapIPv4 } from '../net/ip-matcher.js'
import { toGatewayError, type GatewayError } from '../shared/errors.js'
import { allowResponse, deniedResponse, type CheckResponse } from './check-response.js'

/** Where the vendored protos are, from `src/grpc/` and `dist/grpc/` alike. */
const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url))
const SERVICE_PROTO = 'envoy/service/auth/v3/external_auth.proto'

/** A method worth writing in the decision line of a refused Check: an HTTP token of sane length. */
const LOGGED_METHOD = /^[A-Za-z-]{1,32}$/

/** Largest CheckRequest accepted, bytes: headers only (`with_request_body` off) are a few KiB. */
const MAX_MESSAGE_BYTES = 1024 * 1024

export interface ExtAuthzOptions extends JudgeParts {
  engine: () => Engine
  decisions: DecisionLog
  logger: Logger
}

/** The Authorization service definition, from the vendored protos. */
function authorizationService (): grpc.ServiceDefinition {
  const definition = protoLoader.loadSync(SERVICE_PROTO, { includeDirs: [PROTO_ROOT], keepCase: true, longs: String, enums: String, defaults: false, oneofs: true })
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } } }
  return loaded.envoy.service.auth.v3.Authorization.service
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
  private port: number | null = null

  constructor (options: ExtAuthzOptions) {
    this.options = options
    this.server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES })
    this.server.addService(authorizationService(), {
      Check: (call: grpc.ServerUnaryCall<CheckRequestMessage, CheckResponse>, callback: grpc.sendUnaryData<CheckResponse>) => {
        this.check(call.request, call.getPeer()).then((answer) => callback(null, answer), (err: unknown) => {
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

  /** Opens the listener; resolves with the port bound. */
  async listen (host: string, port: number): Promise<number> {
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
    this.port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) => { if (err === null) resolve(bound); else reject(err) })
    })
    return this.port
  }

  /**
   * Stops accepting, lets the Checks under way finish, and cuts what is left at `deadline` (milliseconds
   * since the epoch). Never throws.
   */
  async close (deadline: number): Promise<void> {
    if (this.port === null) return
    this.port = null
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { this.server.forceShutdown(); resolve() }, Math.max(0, deadline - Date.now()))
      this.server.tryShutdown(() => { clearTimeout(timer); resolve() })
    })
  }

  /** One Check, answered whatever happens. */
  private async check (message: CheckRequestMessage, peer: string): Promise<CheckResponse> {
    const startedAt = process.hrtime.bigint()
    const engine = this.options.engine()
    const from = peerAddress(peer)
    const trusted = engine.config.server.trustProxy
    let request: CheckedRequest
    try {
      request = checkedRequest(message, from, trusted !== null && trusted.has(from))
    } catch (err) {
      const refusal = toGatewayError(err)
      // The method is logged only when it is one: a refused Check may carry anything there, of any length.
      const method = message.attributes?.request?.http?.method
      this.options.decisions.recordCheck({ decision: null, method: method !== undefined && LOGGED_METHOD.test(method) ? method : null, status: refusal.status, startedAt, refusal })
      return deniedResponse(refusal, null, undefined)
    }
    const { input } = request
    try {
      const verdict = await judgeRequest(engine, input, request.cors, this.options)
      if (verdict.kind === 'deny') {
        const { decision } = verdict
        this.options.decisions.recordCheck({ decision, method: input.method, status: decision.error.status, startedAt })
        return deniedResponse(decision.error, decision.route, request.cors.origin)
      }
      this.options.decisions.recordCheck({ decision: verdict.decision, method: input.method, status: 200, startedAt, preflight: verdict.kind === 'preflight' })
      return verdict.kind === 'preflight'
        ? allowResponse(request, verdict.decision, engine.config, undefined, verdict.cors)
        : allowResponse(request, verdict.decision, engine.config, verdict.reissued)
    } catch (err) {
      const error: GatewayError = toGatewayError(err)
      this.options.logger.error({ err: { message: error.detail ?? error.message } }, 'ext_authz decision failed')
      this.options.decisions.recordCheck({ decision: { allowed: false, error, route: null, path: null, token: null, scopes: [] }, method: input.method, status: error.status, startedAt })
      return deniedResponse(error, null, undefined)
    }
  }
}
