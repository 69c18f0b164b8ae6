/**
 * The keys scopegate signs re-issued tokens with (config `reissue.keys`). Each file holds one key, as a
 * JWK (JSON) or PEM (PKCS#8, SEC1 or PKCS#1 private keys; SPKI public keys). The first key signs and must
 * be private; every key is published, so a key being rotated out can still verify the tokens it signed.
 * A key's kid is its JWK `kid`, else its RFC 7638 SHA-256 thumbprint, so the same key always gets the
 * same kid across restarts and replicas.
 *
 * What is published is rebuilt from the public half of the key (`createPublicKey` then export), never
 * copied from the file, so no private member can reach the JWKS whatever the file holds.
 */
import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose'
import { ConfigError, type ConfigProblem } from '../config/problems.js'
import type { CompiledConfig, RawReissue } from '../config/types.js'
import { PUBLISHABLE_ALGORITHMS, keyFitsAlgorithm } from '../token/algorithms.js'

export type ReissueAlgorithm = RawReissue['algorithm']

/** A key as the JWKS endpoint publishes it: public members only, with `kid`, `alg` and `use: sig`. */
export interface PublishedJwk extends JWK {
  kid: string
  alg: string
  use: 'sig'
}

export interface SigningKey {
  kid: string
  alg: ReissueAlgorithm
  /** Non-extractable: it can sign, and cannot be exported again. */
  privateKey: CryptoKey
}

export interface SigningKeySet {
  /** The key that signs: the first configured, or the generated one. */
  signer: SigningKey
  /** Every key's public JWK, the signer's first. */
  published: readonly PublishedJwk[]
  /** True when no key was configured and the signer was generated at start-up. */
  generated: boolean
}

/** Key files are a few KiB at most; anything larger is not a key. */
const MAX_KEY_FILE_BYTES = 64 * 1024
interface KeyFile {
  privateKey: KeyObject | null
  publicKey: KeyObject
  /** `kid`, `alg` and `use` as the JWK declares them. */
  declared: { kid?: unknown, alg?: unknown, use?: unknown }
}

/** Parses one key file's text. Throws an Error whose message is fit for a config problem. */
export function parseKeyFile (text: string): KeyFile {
  const trimmed = text.trim()
  if (trimmed.startsWith('{')) {
    let jwk: unknown
    try { jwk = JSON.parse(trimmed) } catch { throw new Error('is not valid JSON') }
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw new Error('is not a JWK object')
    const k = jwk as Record<string, unknown>
    if (Array.isArray(k.keys)) throw new Error('is a JWK set; give one key per file')
    if (k.kty === 'oct') throw new Error('is a symmetric key; re-issued tokens are signed with asymmetric keys only')
    if (k.kty !== 'EC' && k.kty !== 'OKP' && k.kty !== 'RSA') throw new Error(`has kty ${JSON.stringify(k.kty)}; expected EC, OKP or RSA`)
    try {
      const privateKey = 'd' in k ? createPrivateKey({ key: k as JsonWebKey, format: 'jwk' }) : null
      const publicKey = privateKey === null ? createPublicKey({ key: k as JsonWebKey, format: 'jwk' }) : createPublicKey(privateKey)
      return { privateKey, publicKey, declared: { kid: k.kid, alg: k.alg, use: k.use } }
    } catch (err) {
      throw new Error(`is not a usable JWK (${(err as Error).message})`)
    }
  }
  if (trimmed.includes('-----BEGIN')) {
    if (trimmed.includes('ENCRYPTED PRIVATE KEY')) throw new Error('is an encrypted private key; scopegate reads unencrypted keys only')
    try {
      const privateKey = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(trimmed) ? createPrivateKey(trimmed) : null
      return { privateKey, publicKey: privateKey === null ? createPublicKey(trimmed) : createPublicKey(privateKey), declared: {} }
    } catch (err) {
      throw new Error(`is not a usable PEM key (${(err as Error).message})`)
    }
  }
  throw new Error('is neither a JWK (JSON) nor a PEM key')
}

/** The public JWK of a key, with its kid (given, or the RFC 7638 thumbprint) and alg. */
async function publish (exported: JWK, alg: string, kid: string | undefined): Promise<PublishedJwk> {
  // Only the members that define a public key: whatever else the source held stays behind.
  const members: JWK = exported.kty === 'RSA'
    ? { kty: 'RSA', n: exported.n, e: exported.e }
    : { kty: exported.kty, crv: exported.crv, x: exported.x, ...(exported.y === undefined ? {} : { y: exported.y }) }
  return { ...members, kid: kid ?? await calculateJwkThumbprint(members, 'sha256'), alg, use: 'sig' }
}

export interface LoadKeysOptions {
  /** Where relative key paths are resolved from: the config file's directory. */
  baseDir: string
  /** The config's source, for error messages. */
  source: string
  readFile?: (path: string) => Promise<string>
}

/**
 * Reads every configured key file. The first must be a private key of `reissue.algorithm`; the others
 * may be public only, and may declare another `alg` in their JWK. Collects every problem and throws one
 * `ConfigError` naming each (`reissue.keys[1].file: …`), so a bad key is reported like any config error.
 */
export async function loadSigningKeys (reissue: RawReissue, options: LoadKeysOptions): Promise<SigningKeySet | null> {
  const files = reissue.keys ?? []
  if (files.length === 0) return null
  const read = options.readFile ?? ((path: string) => readFile(path, 'utf8'))
  const problems: ConfigProblem[] = []
  const published: PublishedJwk[] = []
  let signer: SigningKey | null = null

  for (const [index, { file }] of files.entries()) {
    const path = `reissue.keys[${index}].file`
    const problem = (message: string): void => { problems.push({ path, message: `${file}: ${message}` }) }
    let text: string
    try {
      text = await read(resolve(options.baseDir, file))
    } catch (err) {
      problem(`cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
      continue
    }
    if (Buffer.byteLength(text) > MAX_KEY_FILE_BYTES) { problem(`is larger than ${MAX_KEY_FILE_BYTES} bytes`); continue }
    let key: KeyFile
    try { key = parseKeyFile(text) } catch (err) { problem((err as Error).message); continue }

    const { kid, alg, use } = key.declared
    if (kid !== undefined && (typeof kid !== 'string' || kid === '')) { problem('has a kid that is not a non-empty string'); continue }
    if (use !== undefined && use !== 'sig') { problem(`has use ${JSON.stringify(use)}; a signing key needs use "sig" or none`); continue }
    if (alg !== undefined && (typeof alg !== 'string' || !PUBLISHABLE_ALGORITHMS.has(alg))) { problem(`has alg ${JSON.stringify(alg)}, which scopegate does not publish`); continue }
    if (index === 0 && alg !== undefined && alg !== reissue.algorithm) {
      problem(`is the signing key but its JWK says alg ${String(alg)}, not reissue.algorithm ${reissue.algorithm}`)
      continue
    }
    const keyAlg = (alg as string | undefined) ?? reissue.algorithm
    const misfit = keyFitsAlgorithm(keyAlg, key.publicKey)
    if (misfit !== null) {
      problem(`cannot be used for ${keyAlg}: ${misfit}${index > 0 && alg === undefined ? ' (a JWK may declare its own alg to be published under it)' : ''}`)
      continue
    }

    const jwk = await publish(key.publicKey.export({ format: 'jwk' }) as JWK, keyAlg, kid as string | undefined)
    const clash = published.findIndex((p) => p.kid === jwk.kid)
    if (clash >= 0) { problem(`has kid "${jwk.kid}", already used by reissue.keys[${clash}]`); continue }
    published.push(jwk)

    if (index === 0) {
      if (key.privateKey === null) { problem('is the signing key (the first), so it must be a private key'); continue }
      const privateJwk = key.privateKey.export({ format: 'jwk' }) as JWK
      signer = { kid: jwk.kid, alg: reissue.algorithm, privateKey: await importJWK(privateJwk, reissue.algorithm, { extractable: false }) as CryptoKey }
    }
  }

  if (problems.length > 0 || signer === null) throw new ConfigError(options.source, problems)
  return { signer, published, generated: false }
}

/** A fresh signing key held in memory only: for a config that names no key file. */
export async function generateSigningKeys (alg: ReissueAlgorithm): Promise<SigningKeySet> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: false })
  const jwk = await publish(await exportJWK(publicKey), alg, undefined)
  return { signer: { kid: jwk.kid, alg, privateKey }, published: [jwk], generated: true }
}

/**
 * Reads a config's re-issue key files only to check them, as `serve` would read them: throws a
 * `ConfigError` naming each problem (`reissue.keys[0].file: …`). Key files are part of the config, so
 * every command that loads one, and every reload, refuses unusable keys the same way.
 */
export async function checkSigningKeys (config: CompiledConfig): Promise<void> {
  if (config.reissue !== null) await loadSigningKeys(config.reissue, { baseDir: keyBaseDir(config.source), source: config.source })
}

/** The directory relative key paths are resolved from: the config file's own. */
export function keyBaseDir (source: string): string {
  return source.startsWith('<') ? process.cwd() : dirname(resolve(source))
}
