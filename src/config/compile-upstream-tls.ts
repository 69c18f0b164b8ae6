/**
 * An upstream's `tls` block (docs/tls.md, "TLS to upstreams"): its PEM files read and checked at load
 * (and so again on every reload, which compiles anew), so a CA that does not parse, or a client key that
 * is not the certificate's, is a config problem with its path rather than a handshake failing on the
 * first request. The request path reads only the Buffers kept here.
 */
import { dirname, resolve } from 'node:path'
import { MAX_PEM_BYTES, checkKeyPair, pemCertificates, pemPrivateKey, readPemFile, type OnPemFault, type PemFault } from '../net/pem-files.js'
import type { CompiledUpstreamTls, RawUpstreamTls } from './types.js'

type AddProblem = (path: string, message: string) => void

/** The directory relative paths are resolved from: the config file's own (cwd for a config built in memory). */
export function configBaseDir (source: string): string {
  return source.startsWith('<') ? process.cwd() : dirname(resolve(source))
}

/**
 * The words of each fault, after the file's name (`validate` prints them under the config path).
 * `cert`: the certificate file a key file is checked against.
 */
function wording (fault: PemFault, cert: string): string {
  switch (fault.kind) {
    case 'unreadable': return `cannot be read (${fault.code})`
    case 'too-large': return `is larger than ${MAX_PEM_BYTES} bytes`
    case 'no-certificate': return 'holds no PEM certificate'
    case 'bad-certificate': return 'holds a certificate that does not parse'
    case 'encrypted-key': case 'bad-key': return 'is not an unencrypted PEM private key'
    case 'key-mismatch': return `is not the private key of ${cert}`
  }
}

/** Faults found in `file`, as problems at `path`. */
function problemsAt (add: AddProblem, path: string, file: string, cert = ''): OnPemFault {
  return (fault) => { add(path, `${file}: ${wording(fault, cert)}`) }
}

/** The client certificate and key, each checked, and checked to belong together. */
function clientIdentity (add: AddProblem, at: string, raw: RawUpstreamTls, baseDir: string): { cert?: Buffer, key?: Buffer } {
  if (raw.cert === undefined && raw.key === undefined) return {}
  if (raw.cert === undefined || raw.key === undefined) {
    add(`${at}.${raw.cert === undefined ? 'cert' : 'key'}`, 'is required with tls.' + (raw.cert === undefined ? 'key' : 'cert'))
    return {}
  }
  const atCert = problemsAt(add, `${at}.cert`, raw.cert)
  const atKey = problemsAt(add, `${at}.key`, raw.key, raw.cert)
  const certPem = readPemFile(resolve(baseDir, raw.cert), atCert)
  const keyPem = readPemFile(resolve(baseDir, raw.key), atKey)
  const leaf = certPem === undefined ? undefined : pemCertificates(certPem.toString('latin1'), atCert)?.[0]
  const key = keyPem === undefined ? undefined : pemPrivateKey(keyPem, atKey)
  if (leaf !== undefined && key !== undefined) checkKeyPair(leaf, key, atKey)
  return certPem === undefined || keyPem === undefined ? {} : { cert: certPem, key: keyPem }
}

/**
 * The compiled `tls` of the upstream at `at` (`upstreams.orders`), or null when the defaults apply
 * (verification against the system CAs, SNI from the URL, no client certificate).
 *
 * @param https Whether the upstream URL is `https://`: the block means nothing for an `http://` one.
 */
export function compileUpstreamTls (add: AddProblem, at: string, raw: RawUpstreamTls | undefined, https: boolean,
  baseDir: string): CompiledUpstreamTls | null {
  if (raw === undefined) return null
  const path = `${at}.tls`
  if (!https) {
    add(path, 'applies to https:// upstreams only')
    return null
  }
  const compiled: CompiledUpstreamTls = { rejectUnauthorized: !raw.insecureSkipVerify }
  if (raw.ca !== undefined && raw.insecureSkipVerify) add(`${path}.ca`, 'is never used with insecureSkipVerify: drop one of them')
  if (raw.ca !== undefined) {
    const atCa = problemsAt(add, `${path}.ca`, raw.ca)
    const pem = readPemFile(resolve(baseDir, raw.ca), atCa)
    if (pem !== undefined && pemCertificates(pem.toString('latin1'), atCa) !== undefined) compiled.ca = pem
  }
  if (raw.servername !== undefined) compiled.servername = raw.servername
  return { ...compiled, ...clientIdentity(add, path, raw, baseDir) }
}

/** One line per upstream whose certificate is not verified: `validate` prints them, start-up logs them. */
export function insecureUpstreams (upstreams: ReadonlyMap<string, { tls: CompiledUpstreamTls | null }>): string[] {
  const names: string[] = []
  for (const [id, upstream] of upstreams) if (upstream.tls?.rejectUnauthorized === false) names.push(id)
  return names
}

/** The warning `validate` prints and start-up logs for an upstream whose certificate is not verified. */
export function insecureUpstreamWarning (id: string): string {
  return `upstreams.${id}.tls.insecureSkipVerify is true: the upstream's certificate is not verified, ` +
    'so anyone on the path can pose as it and read every request, identity headers included (docs/tls.md)'
}
