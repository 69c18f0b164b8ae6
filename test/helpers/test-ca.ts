/**
 * Certificates made for a test by Debian's `openssl` in a temporary directory: a CA, a server certificate
 * it signs (DNS `upstream.test` and IP 127.0.0.1), a client certificate it signs, and a second CA that
 * signed none of them. Removed when the test ends.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'

export interface TestPki {
  dir: string
  /** File paths, PEM. */
  caCert: string
  otherCaCert: string
  serverCert: string
  serverKey: string
  clientCert: string
  clientKey: string
  /** Read a file of the set. */
  read: (file: string) => Buffer
}

function openssl (dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

function ca (dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`])
}

function leaf (dir: string, name: string, extensions: string): void {
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`,
    '-keyout', `${name}.key`, '-out', `${name}.csr`])
  writeFileSync(join(dir, `${name}.ext`), extensions)
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
    '-extfile', `${name}.ext`, '-out', `${name}.crt`])
}

export function makeTestPki (t: Test): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-pki-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  ca(dir, 'ca')
  ca(dir, 'other-ca')
  leaf(dir, 'server', 'subjectAltName=DNS:upstream.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
  leaf(dir, 'client', 'extendedKeyUsage=clientAuth\n')
  const at = (file: string): string => join(dir, file)
  return {
    dir,
    caCert: at('ca.crt'),
    otherCaCert: at('other-ca.crt'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    clientCert: at('client.crt'),
    clientKey: at('client.key'),
    read: (file) => readFileSync(file)
  }
}
