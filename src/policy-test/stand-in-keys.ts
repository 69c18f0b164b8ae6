/**
 * Keys for deciding cases offline. A case given as claims is signed here with a stand-in key generated
 * for its issuer, and the engine is handed a fetch that serves each issuer's discovery document and JWKS
 * from memory: the decision then runs the live path end to end (signature, `exp`, `typ`, `aud`, policy)
 * with no listener and no network. A case given as a real token is verified against the public keys the
 * cases file names for its issuer; an issuer with neither answers like an unreachable one.
 */
import { randomUUID } from 'node:crypto'
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose'
import type { CompiledConfig, CompiledIssuer } from '../config/types.js'
import type { FetchLike } from '../keys/fetch-json.js'

interface StandIn {
  alg: string
  kid: string
  privateKey: CryptoKey
  publicJwk: JWK
}

/** Where the in-memory JWKS of an issuer is served when its keys come from discovery. */
const jwksUrlOf = (issuer: CompiledIssuer): string => `https://scopegate-test.invalid/${encodeURIComponent(issuer.id)}/jwks.json`

function serve (documents: ReadonlyMap<string, unknown>): FetchLike {
  return async (url) => {
    const body = documents.get(url)
    if (body === undefined) return new Response('not served offline', { status: 404 })
    return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } })
  }
}

/** Where the in-memory introspection endpoint of an issuer is, when the issuer introspects and uses discovery. */
const introspectionUrlOf = (issuer: CompiledIssuer): string => `https://scopegate-test.invalid/${encodeURIComponent(issuer.id)}/introspect`

/** The documents an issuer's key store asks for, with `jwks` as its key set. */
function issuerDocuments (issuer: CompiledIssuer, jwks: unknown): Array<[string, unknown]> {
  if (issuer.keys.kind === 'jwksUri') return [[issuer.keys.url, jwks]]
  const introspection = issuer.introspection === undefined ? {} : { introspection_endpoint: introspectionUrlOf(issuer) }
  return [[issuer.keys.url, { issuer: issuer.issuer, jwks_uri: jwksUrlOf(issuer), ...introspection }], [jwksUrlOf(issuer), jwks]]
}

/**
 * Stand-in introspection (docs/opaque-tokens.md): every token a claims case sends is a stand-in JWT signed
 * here, so the answer is simply its claims, active. An issuer that introspects its JWTs (`jwtTokens`) then
 * decides claims cases through the same path as live traffic, offline.
 */
function introspect (body: RequestInit['body']): Response {
  const token = new URLSearchParams(typeof body === 'string' ? body : '').get('token') ?? ''
  const payload = token.split('.')[1]
  let claims: unknown
  try {
    claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8'))
  } catch {
    claims = null
  }
  const answer = typeof claims === 'object' && claims !== null ? { ...claims, active: true } : { active: false }
  return new Response(JSON.stringify(answer), { status: 200, headers: { 'content-type': 'application/json' } })
}

/** A stand-in signing key for every issuer, made for the issuer's first pinned algorithm. */
export class StandInKeys {
  private constructor (private readonly keys: ReadonlyMap<string, StandIn>, private readonly config: CompiledConfig) {}

  static async create (config: CompiledConfig): Promise<StandInKeys> {
    const keys = new Map<string, StandIn>()
    for (const issuer of config.issuersById.values()) {
      const alg = [...issuer.algorithms][0] as string
      const { privateKey, publicKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {})
      const kid = randomUUID()
      keys.set(issuer.id, { alg, kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } })
    }
    return new StandInKeys(keys, config)
  }

  /** A fetch serving every issuer's stand-in keys. */
  fetch (): FetchLike {
    const documents = new Map<string, unknown>()
    const endpoints = new Set<string>()
    for (const issuer of this.config.issuersById.values()) {
      const key = this.keys.get(issuer.id) as StandIn
      for (const [url, body] of issuerDocuments(issuer, { keys: [key.publicJwk] })) documents.set(url, body)
      const endpoint = issuer.introspection?.endpoint
      if (endpoint !== undefined) endpoints.add(endpoint.kind === 'url' ? endpoint.url : introspectionUrlOf(issuer))
    }
    const documentsFetch = serve(documents)
    return async (url, init) => endpoints.has(url) && init.method === 'POST' ? introspect(init.body) : await documentsFetch(url, init)
  }

  /**
   * The issuer a claims case is signed for: by its `iss`, else the only issuer. An `iss` no issuer has
   * is signed with the first issuer's key, so the gateway refuses it as it would a live one.
   */
  private issuerFor (claims: Record<string, unknown>): CompiledIssuer {
    const byIss = typeof claims.iss === 'string' ? this.config.issuersByIss.get(claims.iss) : undefined
    return byIss ?? [...this.config.issuersById.values()][0] as CompiledIssuer
  }

  /**
   * A token carrying `claims`, signed with the stand-in key. Missing `iss` (with one issuer), `iat` and
   * `exp` are filled in (`exp` five minutes after `now`); `typ` is `at+jwt` unless the claims say
   * `"typ"` under the reserved member `$header`.
   */
  async sign (claims: Record<string, unknown>, nowSec: number): Promise<string> {
    const issuer = this.issuerFor(claims)
    const key = this.keys.get(issuer.id) as StandIn
    const { $header, ...payload } = claims
    const header = typeof $header === 'object' && $header !== null ? $header as Record<string, unknown> : {}
    if (!('iss' in payload) && this.config.issuersById.size === 1) payload.iss = issuer.issuer
    if (!('iat' in payload)) payload.iat = nowSec
    if (!('exp' in payload)) payload.exp = nowSec + 300
    return new SignJWT(payload).setProtectedHeader({ typ: 'at+jwt', ...header, alg: key.alg, kid: key.kid }).sign(key.privateKey)
  }
}

/**
 * A fetch serving, for each issuer the cases file gives keys for, those keys. Issuers without keys are
 * not served: their tokens get the answer of an issuer whose keys cannot be fetched.
 */
export function givenKeysFetch (config: CompiledConfig, keys: ReadonlyMap<string, unknown>): FetchLike {
  const documents = new Map<string, unknown>()
  for (const issuer of config.issuersById.values()) {
    const jwks = keys.get(issuer.id)
    if (jwks !== undefined) for (const [url, body] of issuerDocuments(issuer, jwks)) documents.set(url, body)
  }
  return serve(documents)
}
