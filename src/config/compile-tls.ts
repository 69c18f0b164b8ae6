/**
 * Compiles a listener's `tls` block (docs/tls.md): file paths resolved against the config file's directory,
 * the files read and checked now, so `validate` and a reload report a missing file, a key that is not the
 * certificate's or a client CA that is not one, each at its config path. An expired certificate is a warning,
 * not a problem: kept in the compiled form for `validate` and start-up to print.
 */
import { dirname, resolve } from 'node:path'
import { readTlsMaterial } from '../net/tls-material.js'
import type { CompiledListener, CompiledTls, RawListener, RawListenerTls } from './types.js'

type AddProblem = (path: string, message: string) => void

/** Where a file named in the config is: relative paths from the config file's directory. */
function filePath (source: string, file: string): string {
  return source === '<inline>' ? resolve(file) : resolve(dirname(source), file)
}

function compileTls (add: AddProblem, path: string, raw: RawListenerTls, source: string, now: number): CompiledTls {
  const at = `${path}.tls`
  if (raw.clientCertificate !== 'none' && raw.clientCa === undefined) {
    add(`${at}.clientCa`, `is required when clientCertificate is ${raw.clientCertificate}`)
  }
  if (raw.clientCertificate === 'none' && raw.clientCa !== undefined) {
    add(`${at}.clientCertificate`, 'is none, so clientCa would not be used: say request or require')
  }
  const files = { cert: filePath(source, raw.cert), key: filePath(source, raw.key), clientCa: raw.clientCa === undefined ? null : filePath(source, raw.clientCa) }
  const reading = readTlsMaterial(files, now)
  for (const problem of reading.problems) add(`${at}.${problem.file}`, problem.message)
  return {
    ...files,
    clientCertificate: raw.clientCertificate,
    minVersion: raw.minVersion,
    warnings: reading.warnings.map((warning) => ({ path: `${at}.${warning.file}`, message: warning.message }))
  }
}

/** The compiled listener at `path` (`server.proxy`); `http2` is the proxy listener's only. */
export function compileListener (add: AddProblem, path: string, raw: RawListener & { http2?: boolean }, source: string, now = Date.now()): CompiledListener {
  return {
    host: raw.host,
    port: raw.port,
    tls: raw.tls === undefined ? null : compileTls(add, path, raw.tls, source, now),
    http2: raw.http2 === true
  }
}
