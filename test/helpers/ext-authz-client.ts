/**
 * A gRPC client of scopegate's ext_authz service, loading the same vendored protos, and CheckRequests
 * built the way Envoy's ext_authz HTTP filter builds them (`check_request_utils`): header names lower-case,
 * the pseudo-headers (`:authority`, `:path`, `:method`, `:scheme`) in the map beside the others, the
 * request-target with its query in `path`, the downstream and local addresses with their ports, the SNI
 * in `tls_session`, the route's `context_extensions`, and the client certificate URL-encoded when the
 * downstream used mTLS (`include_peer_certificate`).
 */
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url))

export interface HeaderOption { header: { key: string, value: string }, append_action: string }

/** A CheckResponse as decoded with the options Envoy's messages are read with here. */
export interface CheckResponse {
  status?: { code?: number, message?: string }
  ok_response?: { headers?: HeaderOption[], headers_to_remove?: string[], response_headers_to_add?: HeaderOption[] }
  denied_response?: { status?: { code?: string | number }, headers?: HeaderOption[], body?: string }
  http_response?: string
}

export interface ExtAuthzClient {
  /** One Check; `metadata`: the call's own headers (Envoy's `traceparent` when it traces). */
  check: (request: Record<string, unknown>, metadata?: grpc.Metadata) => Promise<CheckResponse>
  close: () => void
}

type Constructor = new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client & {
  Check: (request: Record<string, unknown>, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, response: CheckResponse) => void) => void
}

/** A client of the Authorization service; `credentials`: plaintext unless given (`grpc.credentials.createSsl`). */
export function extAuthzClient (address: string, credentials = grpc.credentials.createInsecure()): ExtAuthzClient {
  const definition = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', {
    includeDirs: [PROTO_ROOT], keepCase: true, longs: String, enums: String, defaults: false, oneofs: true
  })
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { envoy: { service: { auth: { v3: { Authorization: Constructor } } } } }
  const client = new loaded.envoy.service.auth.v3.Authorization(address, credentials)
  return {
    check: (request, metadata = new grpc.Metadata()) => new Promise((resolve, reject) => {
      // A deadline: a client refused at the handshake would otherwise retry until the test's timeout.
      client.Check(request, metadata, { deadline: Date.now() + 10_000 }, (err, response) => { if (err === null) resolve(response); else reject(err) })
    }),
    close: () => client.close()
  }
}

/** A response of the gRPC health service. */
export interface HealthResponse { status?: string }

export interface HealthClient {
  check: (service?: string) => Promise<HealthResponse>
  list: () => Promise<{ statuses?: Record<string, HealthResponse> }>
  /** A Watch: every message it received so far, and how it ended (null while open). */
  watch: (service?: string) => { received: HealthResponse[], ended: () => grpc.StatusObject | null, cancel: () => void }
  close: () => void
}

type HealthConstructor = new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client & {
  Check: (request: { service: string }, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, response: HealthResponse) => void) => void
  List: (request: Record<string, never>, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, response: { statuses?: Record<string, HealthResponse> }) => void) => void
  Watch: (request: { service: string }) => grpc.ClientReadableStream<HealthResponse>
}

/** A client of the standard gRPC health service (grpc/health/v1/health.proto), as Envoy and the kubelet ask it. */
export function healthClient (address: string, credentials = grpc.credentials.createInsecure()): HealthClient {
  const definition = protoLoader.loadSync('grpc/health/v1/health.proto', { includeDirs: [PROTO_ROOT], keepCase: true, enums: String, defaults: false })
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { grpc: { health: { v1: { Health: HealthConstructor } } } }
  const client = new loaded.grpc.health.v1.Health(address, credentials)
  const deadline = (): grpc.CallOptions => ({ deadline: Date.now() + 10_000 })
  return {
    check: (service = '') => new Promise((resolve, reject) => {
      client.Check({ service }, deadline(), (err, response) => { if (err === null) resolve(response); else reject(err) })
    }),
    list: () => new Promise((resolve, reject) => {
      client.List({}, deadline(), (err, response) => { if (err === null) resolve(response); else reject(err) })
    }),
    watch: (service = '') => {
      const received: HealthResponse[] = []
      let ended: grpc.StatusObject | null = null
      const stream = client.Watch({ service })
      stream.on('data', (message: HealthResponse) => { received.push(message) })
      stream.on('status', (status: grpc.StatusObject) => { ended = status })
      // The status event says how it ended; an error event (a non-OK status) is expected and read there.
      stream.on('error', () => {})
      return { received, ended: () => ended, cancel: () => { stream.cancel() } }
    },
    close: () => client.close()
  }
}

export interface EnvoyRequest {
  method?: string
  /** Path and query, as received. */
  path: string
  host?: string
  scheme?: string
  /** Other request headers; names are lower-cased as Envoy does. */
  headers?: Record<string, string>
  /** The downstream client's address. */
  sourceIp?: string
  /** The client certificate's PEM, when the downstream used mTLS. */
  certificate?: string
  /** Send the headers as `header_map` (`encode_raw_headers: true`) instead of the `headers` map. */
  rawHeaders?: boolean
}

/** A CheckRequest as Envoy's HTTP ext_authz filter sends it. */
export function envoyCheckRequest (request: EnvoyRequest): Record<string, unknown> {
  const method = request.method ?? 'GET'
  const host = request.host ?? 'api.example.com'
  const scheme = request.scheme ?? 'https'
  const headers: Record<string, string> = {
    ':authority': host,
    ':path': request.path,
    ':method': method,
    ':scheme': scheme,
    'user-agent': 'curl/8.5.0',
    accept: '*/*',
    'x-forwarded-proto': scheme,
    'x-request-id': '8d3c6a1e-4f0b-4b7e-9a35-2f1f6f2f1c11'
  }
  for (const [name, value] of Object.entries(request.headers ?? {})) headers[name.toLowerCase()] = value
  const http: Record<string, unknown> = {
    id: '11875512216464581152',
    method,
    path: request.path,
    host,
    scheme,
    protocol: 'HTTP/1.1',
    size: '0'
  }
  if (request.rawHeaders === true) {
    http.header_map = { headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value, 'latin1') })) }
  } else {
    http.headers = headers
  }
  const source: Record<string, unknown> = { address: { socket_address: { address: request.sourceIp ?? '203.0.113.7', port_value: 51234 } } }
  if (request.certificate !== undefined) source.certificate = encodeURIComponent(request.certificate)
  return {
    attributes: {
      source,
      destination: { address: { socket_address: { address: '10.0.0.5', port_value: 8443 } }, principal: 'spiffe://cluster.local/ns/todo/sa/todo' },
      request: { time: { seconds: '1765000000', nanos: 0 }, http },
      context_extensions: { virtual_host: 'todo' },
      metadata_context: {},
      tls_session: { sni: host }
    }
  }
}

/** The headers an OkResponse sets, as a record, checking each overwrites rather than appends. */
export function headersSet (options: HeaderOption[] | undefined): Record<string, string> {
  const set: Record<string, string> = {}
  for (const { header, append_action: action } of options ?? []) {
    if (action !== 'OVERWRITE_IF_EXISTS_OR_ADD') throw new Error(`${header.key} is not overwritten: ${action}`)
    set[header.key] = header.value
  }
  return set
}
