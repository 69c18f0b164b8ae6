/**
 * Certificates for TLS tests, made with Debian's `openssl` in a temp dir: a CA, server certificates for
 * 127.0.0.1/localhost, client certificates, an expired one, a second CA. Each certificate is a PEM file
 * beside its key; nothing here is ever a real secret.
 */
import { execFileSync } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Issued {
  cert: string
  key: string
  /** The certificate's PEM text. */
  pem: string
  serial: string
  /** RFC 8705 thumbprint: base64url SHA-256 of the DER. */
  thumbprint: string
}

export interface CertificateKit {
  dir: string
  ca: Issued
  /** Issues a certificate signed by `ca` (default: the kit's CA). */
  issue: (name: string, options?: { client?: boolean, days?: number, expired?: boolean, by?: Issued }) => Issued
  /** A self-signed CA of its own. */
  authority: (name: string) => Issued
  remove: () => void
}

function openssl (args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 })
}

function describe (dir: string, name: string): Issued {
  const cert = join(dir, `${name}.crt`)
  const pem = readFileSync(cert, 'utf8')
  const x509 = new X509Certificate(pem)
  return { cert, key: join(dir, `${name}.key`), pem, serial: x509.serialNumber, thumbprint: createHash('sha256').update(x509.raw).digest('base64url') }
}

function authority (dir: string, name: string): Issued {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`,
    '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir)
  return describe(dir, name)
}

function issue (dir: string, ca: Issued, name: string, options: { client?: boolean, days?: number, expired?: boolean, by?: Issued }): Issued {
  const by = options.by ?? ca
  const usage = options.client === true ? 'clientAuth' : 'serverAuth'
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`)
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir)
  // An expired certificate: valid for one day, ending yesterday (`x509 -not_before/-not_after` need OpenSSL 3.4; `ca` has them earlier).
  const validity = options.expired === true
    ? ['-days', '1', '-set_serial', `0x${Date.now().toString(16)}`]
    : ['-days', String(options.days ?? 2), '-set_serial', `0x${(Date.now() + Math.floor(Math.random() * 1e6)).toString(16)}`]
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', by.cert, '-CAkey', by.key, '-out', `${name}.crt`, '-extfile', `${name}.ext`, ...validity], dir)
  if (options.expired === true) expire(dir, by, name)
  return describe(dir, name)
}

/** Re-signs `name`'s request as a certificate whose validity ended in the past, with `openssl ca`. */
function expire (dir: string, by: Issued, name: string): void {
  writeFileSync(join(dir, 'index.txt'), '')
  writeFileSync(join(dir, 'ca.cnf'), [
    '[ca]', 'default_ca = expired', '[expired]', `dir = ${dir}`, 'database = $dir/index.txt', 'new_certs_dir = $dir',
    'serial = $dir/serial', 'default_md = sha256', 'policy = any', 'copy_extensions = none', 'unique_subject = no',
    '[any]', 'commonName = supplied', '[ext]', 'subjectAltName=DNS:localhost,IP:127.0.0.1', 'extendedKeyUsage=serverAuth', ''
  ].join('\n'))
  writeFileSync(join(dir, 'serial'), `${Date.now().toString(16).padStart(16, '0')}\n`)
  openssl(['ca', '-batch', '-config', 'ca.cnf', '-cert', by.cert, '-keyfile', by.key, '-in', `${name}.csr`, '-out', `${name}.crt`,
    '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extensions', 'ext', '-notext'], dir)
}

/** A temp dir with a CA in it; `remove` deletes it all. */
export function certificateKit (): CertificateKit {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-tls-'))
  const ca = authority(dir, 'ca')
  return {
    dir,
    ca,
    issue: (name, options = {}) => issue(dir, ca, name, options),
    authority: (name) => authority(dir, name),
    remove: () => { rmSync(dir, { recursive: true, force: true }) }
  }
}
