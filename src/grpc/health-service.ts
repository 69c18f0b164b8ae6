/**
 * The standard gRPC health service, `grpc.health.v1.Health` (proto/grpc/health/v1/health.proto), on the
 * ext_authz listener (docs/istio.md#health-checks): what Envoy's `grpc_health_check` and Kubernetes'
 * `grpc:` probes ask.
 *
 * The status is the gateway's readiness, the one /readyz answers (`http/admin-server.ts`): SERVING when
 * the config is loaded and every issuer has usable keys, NOT_SERVING otherwise and from the moment shutdown
 * begins, so a mesh stops sending Checks before the listener closes. Two names are known: `""` (the server
 * as a whole, what probes ask by default) and `envoy.service.auth.v3.Authorization`; any other is NOT_FOUND
 * for `Check` and SERVICE_UNKNOWN for `Watch`, as the proto says.
 *
 * `Watch` sends the status at once, then each change. Readiness has no change events (an issuer's keys
 * can go stale at any time), so while a watch is open it is re-read every `watchIntervalMs`; shutdown is
 * pushed at once (`refresh`), and the watches are ended when the listener closes.
 */
import * as grpc from '@grpc/grpc-js'

/** The serving states this service answers with, as @grpc/proto-loader encodes the enum (`enums: String`). */
export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN'

interface HealthCheckRequest { service?: string }
interface HealthCheckResponse { status: ServingStatus }
type Watch = grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>

/** The service Envoy asks about; the empty name is the server's overall health. */
export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization'
const KNOWN = new Set(['', AUTHORIZATION_SERVICE])

/** Watches open at once per process: Envoy and the kubelet use `Check`; a few watchers at most is normal. */
const MAX_WATCHES = 100

export interface HealthOptions {
  /** Whether the gateway is ready, as /readyz says; a rejection counts as not ready. */
  ready: () => Promise<boolean>
  /** Milliseconds between readiness reads while a watch is open; default 5 s. */
  watchIntervalMs?: number
}

export class HealthService {
  private readonly options: HealthOptions
  /** Each open watch and the status it was last sent (SERVICE_UNKNOWN: an unknown name, sent nothing more). */
  private readonly watches = new Map<Watch, ServingStatus>()
  private timer: NodeJS.Timeout | undefined
  /** Counts readiness reads, so a slow one (a worker asks its group) never overwrites a later one's status. */
  private reads = 0

  constructor (options: HealthOptions) {
    this.options = options
  }

  /** The handlers, for `grpc.Server.addService`. */
  handlers (): grpc.UntypedServiceImplementation {
    return {
      Check: (call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: grpc.sendUnaryData<HealthCheckResponse>) => {
        // Fixed text: the name asked for is not echoed.
        if (!KNOWN.has(call.request.service ?? '')) { callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' }); return }
        void this.status().then((status) => { callback(null, { status }) })
      },
      List: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<{ statuses: Record<string, HealthCheckResponse> }>) => {
        void this.status().then((status) => { callback(null, { statuses: Object.fromEntries([...KNOWN].map((name) => [name, { status }])) }) })
      },
      Watch: (call: Watch) => { this.watch(call) }
    }
  }

  /** The status of every known name. */
  private async status (): Promise<'SERVING' | 'NOT_SERVING'> {
    try {
      return await this.options.ready() ? 'SERVING' : 'NOT_SERVING'
    } catch {
      return 'NOT_SERVING'
    }
  }

  /** A watch: the status now, then each change; an unknown name is told so once and kept open. */
  private watch (call: Watch): void {
    if (this.watches.size >= MAX_WATCHES) {
      call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many health watches' })
      return
    }
    call.once('cancelled', () => { this.forget(call) })
    call.once('close', () => { this.forget(call) })
    if (!KNOWN.has(call.request.service ?? '')) {
      // Kept open, as the proto asks: the name is unknown now, and no status follows (the names are fixed).
      this.watches.set(call, 'SERVICE_UNKNOWN')
      call.write({ status: 'SERVICE_UNKNOWN' })
      return
    }
    // `UNKNOWN`: nothing sent yet, so the first refresh sends the status whatever it is.
    this.watches.set(call, 'UNKNOWN')
    this.timer ??= setInterval(() => { void this.refresh() }, this.options.watchIntervalMs ?? 5000).unref()
    void this.refresh()
  }

  private forget (call: Watch): void {
    this.watches.delete(call)
    if (this.watches.size === 0) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }

  /** Reads readiness and sends it to every watch whose status it changes (shutdown calls it at once). */
  async refresh (): Promise<void> {
    const read = ++this.reads
    const status = await this.status()
    if (read !== this.reads) return
    for (const [call, sent] of this.watches) {
      if (sent === status || sent === 'SERVICE_UNKNOWN' || call.cancelled) continue
      this.watches.set(call, status)
      call.write({ status })
    }
  }

  /** The listener is closing: every watch is sent NOT_SERVING (if it was not) and ended. */
  close (): void {
    clearInterval(this.timer)
    this.timer = undefined
    for (const [call, sent] of this.watches) {
      if (call.cancelled) continue
      if (sent !== 'NOT_SERVING' && sent !== 'SERVICE_UNKNOWN') call.write({ status: 'NOT_SERVING' })
      call.end()
    }
    this.watches.clear()
  }
}
