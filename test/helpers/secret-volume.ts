/**
 * A TLS secret volume as the kubelet writes it, for certificate rotation tests (docs/tls.md): `tls.crt` →
 * `..data/tls.crt`, `..data` → `..v<n>`; a new set is a new `..v<n+1>` directory, then an atomic rename of
 * a fresh `..data` symlink over the old one, so a reader sees the old set or the new one, never half.
 */
import { copyFileSync, mkdirSync, renameSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import type { Issued } from './certificates.js'

/** The volume's stable paths and how to swap the set they point at. */
export interface SecretVolume {
  /** `<dir>/tls.crt`, what the config names. */
  cert: string
  /** `<dir>/tls.key`, what the config names. */
  key: string
  /** Publishes `cert`'s certificate with `key`'s key (a mismatched pair on purpose, if asked) by a symlink swap. */
  publish: (cert: Issued, key: Issued) => void
  /** The directory of the set in force, to alter it in place (no swap). */
  current: () => string
}

/** Creates the volume in `dir` with `cert`'s certificate and `key`'s key as its first set. */
export function secretVolume (dir: string, cert: Issued, key: Issued): SecretVolume {
  let version = 0
  const publish = (nextCert: Issued, nextKey: Issued): void => {
    const set = `..v${++version}`
    mkdirSync(join(dir, set), { recursive: true })
    copyFileSync(nextCert.cert, join(dir, set, 'tls.crt'))
    copyFileSync(nextKey.key, join(dir, set, 'tls.key'))
    symlinkSync(set, join(dir, '..data_tmp'))
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
  }
  publish(cert, key)
  symlinkSync('..data/tls.crt', join(dir, 'tls.crt'))
  symlinkSync('..data/tls.key', join(dir, 'tls.key'))
  return { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), publish, current: () => join(dir, `..v${version}`) }
}
