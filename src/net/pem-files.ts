/**
 * PEM certificates and private keys read from files, checked once for both kinds of TLS scopegate holds:
 * its listeners' (`tls-material.ts`) and its upstreams' (`config/compile-upstream-tls.ts`), docs/tls.md.
 * What is wrong is a fault of a fixed kind, which each caller words under its own config path: a fault
 * never carries what was read, nor a parser's message, which could quote the key.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'

/** What is wrong with a PEM file; `unreadable` carries the error code (`ENOENT`…), never the message. */
export type PemFault =
  | { kind: 'unreadable', code: string }
  | { kind: 'too-large' | 'no-certificate' | 'bad-certificate' | 'encrypted-key' | 'bad-key' | 'key-mismatch' }

/** Told each fault found; the function that found it then returns undefined (or false). */
export type OnPemFault = (fault: PemFault) => void

/** PEM files are a few KiB; a CA bundle may be some hundreds. Anything larger is not one. */
export const MAX_PEM_BYTES = 1024 * 1024

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** The bytes of a PEM file: `unreadable` (the error code only: the path is the caller's to name) or `too-large`. */
export function readPemFile (path: string, onFault: OnPemFault): Buffer | undefined {
  let pem: Buffer
  try {
    pem = readFileSync(path)
  } catch (err) {
    onFault({ kind: 'unreadable', code: (err as NodeJS.ErrnoException).code ?? 'error' })
    return undefined
  }
  if (pem.length > MAX_PEM_BYTES) {
    onFault({ kind: 'too-large' })
    return undefined
  }
  return pem
}

/**
 * The certificates of a PEM text, parsed: the first `count` of them (1: a chain's leaf only), else all.
 * `no-certificate` when it holds none, `bad-certificate` when one of those parsed does not parse.
 */
export function pemCertificates (text: string, onFault: OnPemFault, count = Infinity): X509Certificate[] | undefined {
  const blocks = text.match(PEM_CERTIFICATE) ?? []
  if (blocks.length === 0) {
    onFault({ kind: 'no-certificate' })
    return undefined
  }
  try {
    return blocks.slice(0, count).map((block) => new X509Certificate(block))
  } catch {
    onFault({ kind: 'bad-certificate' })
    return undefined
  }
}

/** The private key of a PEM text: `encrypted-key` (scopegate takes no passphrase) or `bad-key` when there is none. */
export function pemPrivateKey (pem: string | Buffer, onFault: OnPemFault): KeyObject | undefined {
  if (pem.includes('ENCRYPTED PRIVATE KEY') || pem.includes('Proc-Type: 4,ENCRYPTED')) {
    onFault({ kind: 'encrypted-key' })
    return undefined
  }
  try {
    return createPrivateKey(pem)
  } catch {
    onFault({ kind: 'bad-key' })
    return undefined
  }
}

/** Whether `key` is the private key of `certificate`; `key-mismatch` when it is not. */
export function checkKeyPair (certificate: X509Certificate, key: KeyObject, onFault: OnPemFault): boolean {
  if (certificate.checkPrivateKey(key)) return true
  onFault({ kind: 'key-mismatch' })
  return false
}
