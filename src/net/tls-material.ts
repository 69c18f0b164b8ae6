/**
 * A listener's certificate, key and client CA (docs/tls.md), read from PEM files and checked before they
 * are used: at config load (so `validate` names the bad file by its config path), at start-up, and on every
 * rotation, where a bad new set is refused and the one in force stays. Nothing read here is ever logged or
 * put in a message: only the file's key in the config and what is wrong with it.
 */
import type { X509Certificate } from 'node:crypto'
import { checkKeyPair, pemCertificates, pemPrivateKey, readPemFile, type OnPemFault, type PemFault } from './pem-files.js'

/** The files of one listener's TLS, as absolute paths. */
export interface TlsFiles {
  cert: string
  key: string
  /** The CA bundle client certificates must chain to; null: no client certificates. */
  clientCa: string | null
}

/** What is wrong, by the config key of the file (`cert`, `key`, `clientCa`). */
export interface TlsProblem {
  file: keyof TlsFiles
  message: string
}

/** The PEM texts, checked, ready for `tls.createSecureContext`. */
export interface TlsMaterial {
  cert: string
  key: string
  ca: string | undefined
  /** The listener's own certificate (the first of `cert`), for logs: serial, expiry, fingerprint. */
  certificate: X509Certificate
}

export interface TlsReading {
  /** Null when any problem was found. */
  material: TlsMaterial | null
  problems: TlsProblem[]
  /** Usable, but an operator should know: an expired or not yet valid certificate. */
  warnings: TlsProblem[]
}

/** The words of each fault, as `validate` prints them after the file's config path. */
function wording (fault: PemFault): string {
  switch (fault.kind) {
    case 'unreadable': return `cannot be read (${fault.code})`
    case 'too-large': return 'is larger than 1 MiB, which no PEM file of this kind is'
    case 'no-certificate': return 'holds no PEM certificate'
    case 'bad-certificate': return 'holds a PEM certificate that cannot be parsed'
    case 'encrypted-key': return 'is an encrypted private key; scopegate reads unencrypted keys only'
    case 'bad-key': return 'holds no usable PEM private key'
    case 'key-mismatch': return 'does not match the certificate in cert'
  }
}

/** Faults found in `file`, as problems. */
function problemsIn (problems: TlsProblem[], file: keyof TlsFiles): OnPemFault {
  return (fault) => { problems.push({ file, message: wording(fault) }) }
}

/** The file's text, or undefined with a problem naming why. */
function readOne (problems: TlsProblem[], file: keyof TlsFiles, path: string): string | undefined {
  return readPemFile(path, problemsIn(problems, file))?.toString('utf8')
}

function firstCertificate (problems: TlsProblem[], file: keyof TlsFiles, text: string): X509Certificate | undefined {
  return pemCertificates(text, problemsIn(problems, file), 1)?.[0]
}

/** An expired or not yet valid certificate is a warning: the clock may be wrong, and a restart must not fail on it. */
function validity (warnings: TlsProblem[], file: keyof TlsFiles, certificate: X509Certificate, now: number): void {
  if (Date.parse(certificate.validTo) < now) warnings.push({ file, message: `the certificate expired on ${new Date(certificate.validTo).toISOString()}` })
  else if (Date.parse(certificate.validFrom) > now) warnings.push({ file, message: `the certificate is not valid before ${new Date(certificate.validFrom).toISOString()}` })
}

/** Reads and checks a listener's files: each readable, the key the certificate's, the CA bundle certificates. */
export function readTlsMaterial (files: TlsFiles, now = Date.now()): TlsReading {
  const problems: TlsProblem[] = []
  const warnings: TlsProblem[] = []
  const cert = readOne(problems, 'cert', files.cert)
  const key = readOne(problems, 'key', files.key)
  const ca = files.clientCa === null ? undefined : readOne(problems, 'clientCa', files.clientCa)
  const certificate = cert === undefined ? undefined : firstCertificate(problems, 'cert', cert)
  const keyObject = key === undefined ? undefined : pemPrivateKey(key, problemsIn(problems, 'key'))
  if (certificate !== undefined && keyObject !== undefined) checkKeyPair(certificate, keyObject, problemsIn(problems, 'key'))
  if (certificate !== undefined) validity(warnings, 'cert', certificate, now)
  if (ca !== undefined) {
    const authority = firstCertificate(problems, 'clientCa', ca)
    if (authority !== undefined) validity(warnings, 'clientCa', authority, now)
  }
  const ok = problems.length === 0 && cert !== undefined && key !== undefined && certificate !== undefined
  return { material: ok ? { cert, key, ca, certificate } : null, problems, warnings }
}
