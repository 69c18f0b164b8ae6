/**
 * The certificates the upstream TLS tests use, from the shared kit (`certificates.ts`: Debian's `openssl`
 * in a temporary directory): a CA, a server certificate it signs (DNS `localhost`, IP 127.0.0.1), an
 * expired one, a client certificate, and a second CA that signed none of them. Removed when the test ends.
 */
import { readFileSync } from 'node:fs'
import type { Test } from 'tap'
import { certificateKit } from './certificates.js'

export interface TestPki {
  dir: string
  /** File paths, PEM. */
  caCert: string
  otherCaCert: string
  serverCert: string
  serverKey: string
  expiredCert: string
  expiredKey: string
  clientCert: string
  clientKey: string
  /** Read a file of the set. */
  read: (file: string) => Buffer
}

export function makeTestPki (t: Test): TestPki {
  const kit = certificateKit()
  t.teardown(() => { kit.remove() })
  const server = kit.issue('server')
  const expired = kit.issue('expired', { expired: true })
  const client = kit.issue('client', { client: true })
  const other = kit.authority('other-ca')
  return {
    dir: kit.dir,
    caCert: kit.ca.cert,
    otherCaCert: other.cert,
    serverCert: server.cert,
    serverKey: server.key,
    expiredCert: expired.cert,
    expiredKey: expired.key,
    clientCert: client.cert,
    clientKey: client.key,
    read: (file) => readFileSync(file)
  }
}
