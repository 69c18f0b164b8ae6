/**
 * A listener's certificate, key and client CA (docs/tls.md), read from PEM files and checked before they
 * are used: at config load (so `validate` names the bad file by its config path), at start-up, and on every
 * rotation, where a bad new set is refused and the one in force stays. Nothing read here is ever logged or
 * put in a message: only the file's key in the config and what is wrong with it.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'

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

/** PEM files are a few KiB; a CA bundle may be some hundreds. Anything larger is not one. */
const MAX_PEM_BYTES = 1024 * 1024
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

function readPem (file: string): string {
  const text = readFileSync(file, 'utf8')
  if (text.length > MAX_PEM_BYTES) throw new Error('is larger than 1 MiB, which no PEM file of this kind is')
  return text
}

/** The file's text, or undefined with a problem naming why (the error code only: the path is the config's). */
function readOne (problems: TlsProblem[], file: keyof TlsFiles, path: string): string | undefined {
  try {
    return readPem(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    problems.push({ file, message: code === undefined ? (err as Error).message : `cannot be read (${code})` })
    return undefined
  }
}

function firstCertificate (problems: TlsProblem[], file: keyof TlsFiles, text: string): X509Certificate | undefined {
  const pem = text.match(PEM_CERTIFICATE)?.[0]
  if (pem === undefined) {
    problems.push({ file, message: 'holds no PEM certificate' })
    return undefined
  }
  try {
    return new X509Certificate(pem)
  } catch {
    problems.push({ file, message: 'holds a PEM certificate that cannot be parsed' })
    return undefined
  }
}

function privateKey (problems: TlsProblem[], text: string): KeyObject | undefined {
  if (text.includes('ENCRYPTED PRIVATE KEY') || /Proc-Type: 4,ENCRYPTED/.test(text)) {
    problems.push({ file: 'key', message: 'is an encrypted private key; scopegate reads unencrypted keys only' })
    return undefined
  }
  try {
    return createPrivateKey(text)
  } catch {
    problems.push({ file: 'key', message: 'holds no usable PEM private key' })
    return undefined
  }
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
  const keyObject = key === undefined ? undefined : privateKey(problems, key)
  if (certificate !== undefined && keyObject !== undefined && !certificate.checkPrivateKey(keyObject)) {
    problems.push({ file: 'key', message: 'does not match the certificate in cert' })
  }
  if (certificate !== undefined) validity(warnings, 'cert', certificate, now)
  if (ca !== undefined) {
    const authority = firstCertificate(problems, 'clientCa', ca)
    if (authority !== undefined) validity(warnings, 'clientCa', authority, now)
  }
  const ok = problems.length === 0 && cert !== undefined && key !== undefined && certificate !== undefined
  return { material: ok ? { cert, key, ca, certificate } : null, problems, warnings }
}
