/**
 * An upstream's `tls` block (docs/tls.md, "TLS to upstreams"): its PEM files read and checked at load
 * (and so again on every reload, which compiles anew), so a CA that does not parse, or a client key that
 * is not the certificate's, is a config problem with its path rather than a handshake failing on the
 * first request. The request path reads only the Buffers kept here.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { CompiledUpstreamTls, RawUpstreamTls } from './types.js'

type AddProblem = (path: string, message: string) => void

/** PEM files hold a handful of certificates; anything larger is not one. */
const MAX_PEM_BYTES = 1024 * 1024

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** The directory relative paths are resolved from: the config file's own (cwd for a config built in memory). */
export function configBaseDir (source: string): string {
  return source.startsWith('<') ? process.cwd() : dirname(resolve(source))
}

function readPem (add: AddProblem, path: string, file: string, baseDir: string): Buffer | null {
  try {
    const pem = readFileSync(resolve(baseDir, file))
    if (pem.length > MAX_PEM_BYTES) {
      add(path, `${file}: is larger than ${MAX_PEM_BYTES} bytes`)
      return null
    }
    return pem
  } catch (err) {
    // The error code only: the message would repeat the path.
    add(path, `${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    return null
  }
}

/** Every certificate of a PEM bundle, parsed; null (and a problem) when there is none or one does not parse. */
function certificates (add: AddProblem, path: string, file: string, pem: Buffer): X509Certificate[] | null {
  const blocks = pem.toString('latin1').match(PEM_CERTIFICATE) ?? []
  if (blocks.length === 0) {
    add(path, `${file}: holds no PEM certificate`)
    return null
  }
  try {
    return blocks.map((block) => new X509Certificate(block))
  } catch {
    add(path, `${file}: holds a certificate that does not parse`)
    return null
  }
}

function privateKey (add: AddProblem, path: string, file: string, pem: Buffer): KeyObject | null {
  try {
    return createPrivateKey(pem)
  } catch {
    // Never the parser's message: it could quote the key.
    add(path, `${file}: is not an unencrypted PEM private key`)
    return null
  }
}

/** The client certificate and key, each checked, and checked to belong together. */
function clientIdentity (add: AddProblem, at: string, raw: RawUpstreamTls, baseDir: string): { cert?: Buffer, key?: Buffer } {
  if (raw.cert === undefined && raw.key === undefined) return {}
  if (raw.cert === undefined || raw.key === undefined) {
    add(`${at}.${raw.cert === undefined ? 'cert' : 'key'}`, 'is required with tls.' + (raw.cert === undefined ? 'key' : 'cert'))
    return {}
  }
  const certPem = readPem(add, `${at}.cert`, raw.cert, baseDir)
  const keyPem = readPem(add, `${at}.key`, raw.key, baseDir)
  const leaf = certPem === null ? null : certificates(add, `${at}.cert`, raw.cert, certPem)?.[0] ?? null
  const key = keyPem === null ? null : privateKey(add, `${at}.key`, raw.key, keyPem)
  if (leaf !== null && key !== null && !leaf.checkPrivateKey(key)) add(`${at}.key`, `${raw.key}: is not the private key of ${raw.cert}`)
  return certPem === null || keyPem === null ? {} : { cert: certPem, key: keyPem }
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
    const pem = readPem(add, `${path}.ca`, raw.ca, baseDir)
    if (pem !== null && certificates(add, `${path}.ca`, raw.ca, pem) !== null) compiled.ca = pem
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
