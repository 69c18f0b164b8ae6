/**
 * Compiles an issuer's `introspection` block (docs/opaque-tokens.md): the endpoint (configured, or the
 * discovery document's), the client authentication with its secret read once at load time, and the
 * cache lifetimes in milliseconds. Secrets are wrapped so that no log line, error or dump of the
 * compiled config can print them. Also picks the one issuer that tokens which are not JWTs go to: never
 * several, so an opaque token is only ever sent to the IdP the operator named for it.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { inspect } from 'node:util'
import { parseDuration } from '../shared/duration.js'
import type { ClaimPath, CompiledIntrospection, RawIssuer, SecretValue } from './types.js'

type AddProblem = (path: string, message: string) => void

const REDACTED = '[redacted]'

/** A secret that prints as `[redacted]` however it is serialized. */
export class Secret implements SecretValue {
  readonly #value: string
  constructor (value: string) { this.#value = value }
  reveal (): string { return this.#value }
  toJSON (): string { return REDACTED }
  toString (): string { return REDACTED }
  [inspect.custom] (): string { return REDACTED }
}

function segments (path: ClaimPath): string[] {
  return typeof path === 'string' ? [path] : [...path]
}

function millis (add: AddProblem, path: string, text: string): number {
  try {
    return parseDuration(text)
  } catch (err) {
    add(path, (err as Error).message)
    return 0
  }
}

/** The JWS algorithm a private key signs `private_key_jwt` assertions with. */
function assertionAlg (key: KeyObject): string | null {
  switch (key.asymmetricKeyType) {
    case 'rsa': return 'RS256'
    case 'rsa-pss': return 'PS256'
    case 'ed25519': return 'EdDSA'
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve
      return curve === 'prime256v1' ? 'ES256' : curve === 'secp384r1' ? 'ES384' : curve === 'secp521r1' ? 'ES512' : null
    }
    default: return null
  }
}

function readSecretFile (add: AddProblem, path: string, file: string): string {
  try {
    const text = readFileSync(file, 'utf8').replace(/\r?\n$/, '')
    if (text === '') add(path, 'the file is empty')
    return text
  } catch (err) {
    // The error code only: the message would repeat the path, which the problem already names.
    add(path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    return ''
  }
}

/** The compiled `introspection` of `issuer`, or undefined when it has none. `path` is the issuer's (`issuers[0]`). */
export function compileIntrospection (add: AddProblem, path: string, issuer: RawIssuer, roles: ClaimPath): CompiledIntrospection | undefined {
  const raw = issuer.introspection
  if (raw === undefined) return undefined
  const at = `${path}.introspection`
  let endpoint: CompiledIntrospection['endpoint']
  if (raw.endpoint !== undefined) endpoint = { kind: 'url', url: raw.endpoint }
  else if (issuer.discovery === true) endpoint = { kind: 'discovery', url: `${issuer.issuer.replace(/\/$/, '')}/.well-known/openid-configuration` }
  else {
    add(`${at}.endpoint`, 'is required unless the issuer uses discovery: true')
    endpoint = { kind: 'url', url: '' }
  }

  let auth: CompiledIntrospection['auth']
  if (raw.authMethod === 'private_key_jwt') {
    if (raw.clientSecret !== undefined || raw.clientSecretFile !== undefined) add(at, 'private_key_jwt takes privateKeyFile, not a client secret')
    let key: KeyObject | null = null
    if (raw.privateKeyFile === undefined) add(`${at}.privateKeyFile`, 'is required for private_key_jwt')
    else {
      const pem = readSecretFile(add, `${at}.privateKeyFile`, raw.privateKeyFile)
      try {
        if (pem !== '') key = createPrivateKey(pem)
      } catch {
        add(`${at}.privateKeyFile`, 'is not a PEM private key')
      }
    }
    const alg = key === null ? null : assertionAlg(key)
    if (key !== null && alg === null) add(`${at}.privateKeyFile`, 'must be an RSA, EC (P-256, P-384, P-521) or Ed25519 key')
    // Without a usable key a problem was added, and the config is refused before this value is used.
    auth = { method: 'private_key_jwt', key: key as KeyObject, alg: alg ?? 'EdDSA' }
  } else {
    if (raw.privateKeyFile !== undefined) add(`${at}.privateKeyFile`, `is only for private_key_jwt, not ${raw.authMethod}`)
    if ((raw.clientSecret === undefined) === (raw.clientSecretFile === undefined)) add(at, 'needs exactly one of clientSecret or clientSecretFile')
    const secret = raw.clientSecret ?? (raw.clientSecretFile === undefined ? '' : readSecretFile(add, `${at}.clientSecretFile`, raw.clientSecretFile))
    auth = { method: raw.authMethod, secret: new Secret(secret) }
  }

  return {
    endpoint,
    clientId: raw.clientId,
    auth,
    opaqueTokens: raw.opaqueTokens,
    jwtTokens: raw.jwtTokens,
    roles: segments(raw.rolesClaim ?? roles),
    jwtResponse: raw.jwtResponse,
    cacheTtlMs: millis(add, `${at}.cacheTtl`, raw.cacheTtl),
    refusalTtlMs: millis(add, `${at}.refusalTtl`, raw.refusalTtl),
    timeoutMs: millis(add, `${at}.timeout`, raw.timeout),
    retryAfterSec: Math.max(1, Math.ceil(millis(add, `${at}.retryAfter`, raw.retryAfter) / 1000)),
    maxBytes: raw.maxBytes,
    cooldownMs: millis(add, `${at}.cooldown`, raw.cooldown)
  }
}
