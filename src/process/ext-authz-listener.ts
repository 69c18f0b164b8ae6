/**
 * Opening the ext_authz gRPC listener (docs/istio.md): gRPC and the protos are imported here, only when
 * `server.extAuthz` is configured (about 12 MiB of every process's memory otherwise); with `tls`, the
 * credentials the listener's certificate rotations go to (`tls-listeners.ts`) are made and attached.
 */
import type { CompiledListener } from '../config/types.js'
import type { ExtAuthzOptions, ExtAuthzServer } from '../grpc/ext-authz-server.js'
import type { GrpcListenerTls } from './tls-listeners.js'

export interface OpenedExtAuthz {
  server: ExtAuthzServer
  /** `host:port` as a client on this machine reaches it. */
  address: string
}

/** Builds the server and opens it at `at`; `tls`: its certificate as read at start-up, null for plaintext. */
export async function openExtAuthz (at: CompiledListener, tls: GrpcListenerTls | null, options: ExtAuthzOptions): Promise<OpenedExtAuthz> {
  const { ExtAuthzServer } = await import('../grpc/ext-authz-server.js')
  const server = new ExtAuthzServer(options)
  let port: number
  if (tls === null) {
    port = await server.listen(at.host, at.port)
  } else {
    const { RotatingServerCredentials } = await import('../grpc/server-credentials.js')
    const credentials = new RotatingServerCredentials(tls.tls, tls.material)
    port = await server.listen(at.host, at.port, credentials)
    tls.attach(credentials)
  }
  return { server, address: `${at.host === '0.0.0.0' ? '127.0.0.1' : at.host}:${port}` }
}
