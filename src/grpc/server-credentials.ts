/**
 * The ext_authz listener's TLS as @grpc/grpc-js takes it (docs/istio.md#tls): server credentials whose
 * certificate, key and client CA can be replaced while the listener runs.
 *
 * `ServerCredentials.createSsl` fixes its files for the server's life, and has no TLS version floor and no
 * `request` mode. grpc-js builds its HTTP/2 server from a credentials object's constructor options (fixed:
 * `requestCert`, `rejectUnauthorized`, `minVersion`) and its secure-context options (`cert`, `key`, `ca`),
 * and registers a watcher on it that calls the server's `setSecureContext` with every new set it is given.
 * This class is such a credentials object: a rotation (`tls-listeners.ts`) hands it the new files, and, as on
 * the proxy and admin listeners, new handshakes get them while connections open keep what they were made
 * with.
 *
 * A set is tried with `tls.createSecureContext` before it is handed on: grpc-js would take a set that
 * OpenSSL refuses as "no credentials" and drop every new connection until the next good one.
 */
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import { ServerCredentials } from '@grpc/grpc-js'
import type { CompiledTls } from '../config/types.js'
import type { CertificateHolder } from '../http/listener-server.js'
import { secureContextOptions } from '../http/listener-server.js'
import type { TlsMaterial } from '../net/tls-material.js'

export class RotatingServerCredentials extends ServerCredentials implements CertificateHolder {
  private readonly minVersion: CompiledTls['minVersion']

  constructor (tls: CompiledTls, material: TlsMaterial) {
    super({
      minVersion: tls.minVersion,
      // `request`: a certificate is asked for and checked, the handshake goes on without a good one.
      requestCert: tls.clientCertificate !== 'none',
      rejectUnauthorized: tls.clientCertificate === 'require'
    }, secureContextOptions(material))
    this.minVersion = tls.minVersion
  }

  /**
   * New certificate, key and client CA for new handshakes. @throws Error when OpenSSL refuses them; the set
   * in force then stays.
   */
  setSecureContext (options: SecureContextOptions): void {
    createSecureContext({ ...options, minVersion: this.minVersion })
    this.updateSecureContextOptions(options)
  }

  _equals (other: ServerCredentials): boolean {
    return other === this
  }
}
