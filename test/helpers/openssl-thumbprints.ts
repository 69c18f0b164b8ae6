/**
 * Client certificates for certificate-bound token tests (RFC 8705), made by Debian's `openssl` in a
 * temporary directory, and their `x5t#S256` thumbprints computed by openssl too, so the code under test
 * is checked against an independent computation.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestCertificate {
  pem: string
  /** base64url SHA-256 of the DER, as `cnf.x5t#S256` holds it. */
  thumbprint: string
  /** The same digest in hex, as Envoy's `x-forwarded-client-cert` `Hash=` carries it. */
  hex: string
}

/** Self-signed P-256 client certificates, one per name. */
export function makeCertificates (...names: string[]): TestCertificate[] {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-certs-'))
  try {
    return names.map((name) => {
      const cert = join(dir, `${name}.pem`)
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', join(dir, `${name}.key`), '-out', cert, '-subj', `/CN=${name}`, '-days', '2'], { stdio: 'ignore', timeout: 20_000 })
      const der = execFileSync('openssl', ['x509', '-in', cert, '-outform', 'DER'], { timeout: 20_000 })
      const hex = execFileSync('openssl', ['dgst', '-sha256', '-r'], { input: der, timeout: 20_000 }).toString('latin1').split(' ')[0] as string
      return { pem: readFileSync(cert, 'utf8'), thumbprint: Buffer.from(hex, 'hex').toString('base64url'), hex }
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
