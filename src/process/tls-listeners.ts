/**
 * The TLS side of the gateway's listeners (docs/tls.md): their files read and checked at start-up,
 * the servers that serve them (`http/listener-server.ts`), and certificate rotation without a restart.
 * The ext_authz gRPC listener (docs/istio.md#tls) is rotated the same way: its server is built later, by
 * `grpc/server-credentials.ts`, and attaches the credentials rotations are handed to (`GrpcListenerTls`).
 *
 * cert-manager and Kubernetes secret volumes replace the files in place (an atomic swap of the `..data`
 * symlink in the mounted directory); so do `mv` and most tools. Each file is watched as the config file is
 * (`config/watch.ts`: directory events and a poll, compared by content), and re-read on every config reload
 * (SIGHUP) too. A new set is checked as at start-up and swapped in with `setSecureContext`: connections
 * open keep the certificate they were made with, new handshakes get the new one. A set that does not pass
 * (a key of another certificate, half a rotation) is logged and refused; the one in force stays.
 */
import type { ServerOptions } from 'node:http'
import type { Logger } from 'pino'
import { ConfigError, type ConfigProblem } from '../config/problems.js'
import type { CompiledConfig, CompiledListener, CompiledTls } from '../config/types.js'
import { watchConfigFile, type ConfigWatcher } from '../config/watch.js'
import { listenerServer, secureContextOptions, type CertificateHolder, type ListenerServer } from '../http/listener-server.js'
import { readTlsMaterial, type TlsMaterial, type TlsReading } from '../net/tls-material.js'

export type ListenerName = 'proxy' | 'admin' | 'extAuthz'

/** Milliseconds of quiet after the last file event before the files are re-read: a rotation writes several. */
const ROTATION_DEBOUNCE_MS = 500

function problemsOf (path: string, reading: TlsReading): ConfigProblem[] {
  return reading.problems.map((problem) => ({ path: `${path}.tls.${problem.file}`, message: problem.message }))
}

/** What is logged of a certificate: public, and enough to tell which one is in force. */
function described (material: TlsMaterial): Record<string, string> {
  const { certificate } = material
  return { subject: certificate.subject, serial: certificate.serialNumber, fingerprint256: certificate.fingerprint256, validTo: certificate.validTo }
}

/** One TLS listener's certificate: read, watched, swapped. */
class ListenerCertificate {
  private readonly watchers: ConfigWatcher[] = []
  private timer: NodeJS.Timeout | undefined

  constructor (
    private readonly name: ListenerName,
    private readonly tls: CompiledTls,
    private readonly server: () => CertificateHolder | null,
    private readonly logger: Logger
  ) {}

  /** Watches the files; a change re-reads all of them, once the burst of events is over. */
  watch (pollMs?: number): void {
    const files = [this.tls.cert, this.tls.key, ...(this.tls.clientCa === null ? [] : [this.tls.clientCa])]
    for (const file of new Set(files)) {
      this.watchers.push(watchConfigFile(file, () => {
        clearTimeout(this.timer)
        this.timer = setTimeout(() => { this.reload('file') }, ROTATION_DEBOUNCE_MS)
      }, { pollMs }))
    }
  }

  /** Re-reads the files and swaps them in if they pass. Returns whether the new set is in force. */
  reload (trigger: string): boolean {
    const server = this.server()
    if (server === null) return false
    const path = `server.${this.name}`
    const reading = readTlsMaterial(this.tls)
    if (reading.material === null) {
      this.logger.error({ listener: this.name, trigger, problems: problemsOf(path, reading) },
        'TLS files refused; the certificate in force stays')
      return false
    }
    try {
      server.setSecureContext(secureContextOptions(reading.material))
    } catch (err) {
      // What OpenSSL refuses that the checks above let through (a key too weak for its security level).
      this.logger.error({ listener: this.name, trigger, err: { message: (err as Error).message } }, 'TLS files refused; the certificate in force stays')
      return false
    }
    for (const warning of reading.warnings) this.logger.warn({ listener: this.name, path: `${path}.tls.${warning.file}` }, warning.message)
    this.logger.info({ listener: this.name, trigger, certificate: described(reading.material) }, 'TLS certificate loaded')
    return true
  }

  close (): void {
    clearTimeout(this.timer)
    for (const watcher of this.watchers) watcher.close()
  }
}

/** The ext_authz listener's TLS as read at start-up; its gRPC server attaches where rotations go. */
export interface GrpcListenerTls {
  tls: CompiledTls
  material: TlsMaterial
  /** Called once the gRPC server's credentials exist: each rotation from then on is handed to them. */
  attach: (holder: CertificateHolder) => void
}

/** The listeners' servers, and the certificates of those that use TLS. */
export class TlsListeners {
  private readonly certificates: ListenerCertificate[] = []
  readonly proxy: ListenerServer
  readonly admin: ListenerServer
  /** Null when `server.extAuthz` is off or plaintext. */
  readonly extAuthz: GrpcListenerTls | null

  /**
   * Reads every TLS file now. Throws ConfigError (with config paths) when one cannot be used: a gateway
   * does not open a listener it cannot secure.
   */
  constructor (config: CompiledConfig, http1Options: ServerOptions, private readonly logger: Logger) {
    this.proxy = this.open(config.source, 'proxy', config.server.proxy, http1Options)
    this.admin = this.open(config.source, 'admin', config.server.admin, {})
    const extAuthz = config.server.extAuthz
    this.extAuthz = extAuthz === null || extAuthz.tls === null ? null : this.grpc(config.source, extAuthz.tls)
  }

  /** The listener's files, read and checked now. @throws ConfigError */
  private read (source: string, name: ListenerName, tls: CompiledTls): TlsMaterial {
    const reading = readTlsMaterial(tls)
    if (reading.material === null) throw new ConfigError(source, problemsOf(`server.${name}`, reading))
    for (const warning of reading.warnings) this.logger.warn({ listener: name, path: `server.${name}.tls.${warning.file}` }, warning.message)
    this.logger.info({ listener: name, certificate: described(reading.material) }, 'TLS certificate loaded')
    return reading.material
  }

  private open (source: string, name: ListenerName, listener: CompiledListener, http1Options: ServerOptions): ListenerServer {
    if (listener.tls === null) return listenerServer(listener, null, http1Options)
    const opened = listenerServer(listener, this.read(source, name, listener.tls), http1Options)
    this.certificates.push(new ListenerCertificate(name, listener.tls, opened.certificates, this.logger))
    return opened
  }

  private grpc (source: string, tls: CompiledTls): GrpcListenerTls {
    const material = this.read(source, 'extAuthz', tls)
    let holder: CertificateHolder | null = null
    this.certificates.push(new ListenerCertificate('extAuthz', tls, () => holder, this.logger))
    return { tls, material, attach: (attached) => { holder = attached } }
  }

  /** Starts watching the files (once the listeners are open). `pollMs`: the fallback poll, for tests. */
  watch (pollMs?: number): void {
    for (const certificate of this.certificates) certificate.watch(pollMs)
  }

  /** Re-reads every TLS listener's files (a config reload, SIGHUP). */
  reload (trigger: string): void {
    for (const certificate of this.certificates) certificate.reload(trigger)
  }

  close (): void {
    for (const certificate of this.certificates) certificate.close()
  }
}
