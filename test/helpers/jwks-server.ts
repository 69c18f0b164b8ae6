/**
 * A JWKS (and OIDC discovery) server under the test's control, plus token minting for the tokens no
 * real IdP would issue: other algorithms, missing `aud`/`exp`, wrong `typ`, unknown kids, `alg: none`…
 */
import http from 'node:http'
import { randomUUID } from 'node:crypto'
import {
  exportJWK,
  generateKeyPair,
  SignJWT,
  UnsecuredJWT,
  type CryptoKey,
  type JWK,
  type JWTHeaderParameters,
  type KeyObject,
} from 'jose'
import { closeServer, listenLocal, resetSocket, trackSockets } from './echo-upstream.js'

export type TestAlg = 'RS256' | 'ES256' | 'PS256' | 'EdDSA'

export interface TestKey {
  kid: string
  alg: string
  privateKey: CryptoKey | KeyObject
  /** public JWK with kid, alg and use: 'sig' */
  publicJwk: JWK
}

export async function makeKey (alg: TestAlg = 'RS256', kid: string = `test-${randomUUID()}`): Promise<TestKey> {
  // Public keys are always exportable; extractable lets a test also export the private key (e.g. to
  // write a key file for the gateway's own signing config).
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  return { kid, alg, privateKey, publicJwk }
}

/**
 * - 'ok': serve normally
 * - 'down': 503
 * - 'refuse': the socket is reset as soon as the request arrives (ECONNRESET; the request is counted)
 * - 'hang': never answer
 * - {delayMs}: serve normally after the delay
 * - {body, contentType?, status?}: serve exactly this (default application/json, 200)
 */
export type JwksMode =
  | 'ok'
  | 'down'
  | 'refuse'
  | 'hang'
  | { delayMs: number }
  | { body: string | Buffer; contentType?: string; status?: number }

/** Which endpoint setMode affects; default 'jwks' (discovery keeps answering normally). */
export type JwksTarget = 'jwks' | 'discovery' | 'all'

export interface JwksServer {
  /** the JWKS URL: <issuer>/.well-known/jwks.json */
  url: string
  /** http://127.0.0.1:PORT (no trailing slash); <issuer>/.well-known/openid-configuration points at `url` */
  issuer: string
  /** requests received on the JWKS URL, whatever the mode */
  readonly fetches: number
  /** requests received on the discovery URL, whatever the mode */
  readonly discoveryFetches: number
  /** replaces the published keys; raw JWKs are published as given (bad ones included) */
  setKeys(keys: TestKey[] | JWK[]): void
  setMode(mode: JwksMode, target?: JwksTarget): void
  close(): Promise<void>
}

const JWKS_PATH = '/.well-known/jwks.json'
const DISCOVERY_PATH = '/.well-known/openid-configuration'

function isTestKey (key: TestKey | JWK): key is TestKey {
  return 'publicJwk' in key && typeof key.publicJwk === 'object'
}

export async function startJwksServer (keys: TestKey[]): Promise<JwksServer> {
  let published: JWK[] = keys.map((k) => k.publicJwk)
  const modes: Record<'jwks' | 'discovery', JwksMode> = { jwks: 'ok', discovery: 'ok' }
  let fetches = 0
  let discoveryFetches = 0
  let issuer = ''
  const timers = new Set<NodeJS.Timeout>()

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    let endpoint: 'jwks' | 'discovery'
    if (path === JWKS_PATH) {
      endpoint = 'jwks'
      fetches++
    } else if (path === DISCOVERY_PATH) {
      endpoint = 'discovery'
      discoveryFetches++
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}')
      return
    }

    // Built at answer time so setKeys() during a delay is reflected, as with a real server.
    const serve = (): void => {
      if (res.destroyed) return
      const doc =
        endpoint === 'jwks'
          ? { keys: published }
          : {
              issuer,
              jwks_uri: `${issuer}${JWKS_PATH}`,
              response_types_supported: ['code'],
              subject_types_supported: ['public'],
              id_token_signing_alg_values_supported: ['RS256', 'ES256', 'PS256', 'EdDSA'],
            }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc))
    }

    const mode = modes[endpoint]
    if (mode === 'ok') serve()
    else if (mode === 'down') {
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end('unavailable')
    } else if (mode === 'refuse') resetSocket(req.socket)
    else if (mode === 'hang') { /* never answer */ } else if ('delayMs' in mode) {
      const timer = setTimeout(() => {
        timers.delete(timer)
        serve()
      }, mode.delayMs)
      timers.add(timer)
    } else {
      res.writeHead(mode.status ?? 200, { 'content-type': mode.contentType ?? 'application/json' }).end(mode.body)
    }
  })
  const sockets = trackSockets(server)
  const port = await listenLocal(server)
  issuer = `http://127.0.0.1:${port}`

  return {
    url: `${issuer}${JWKS_PATH}`,
    issuer,
    get fetches () {
      return fetches
    },
    get discoveryFetches () {
      return discoveryFetches
    },
    setKeys (next) {
      published = next.map((k: TestKey | JWK) => (isTestKey(k) ? k.publicJwk : k))
    },
    setMode (mode, target = 'jwks') {
      if (target !== 'discovery') modes.jwks = mode
      if (target !== 'jwks') modes.discovery = mode
    },
    close () {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      return closeServer(server, sockets)
    },
  }
}

export interface MintOptions {
  /** merged over {alg: key.alg, kid: key.kid, typ: 'at+jwt'}; a key set to undefined is removed */
  header?: Record<string, unknown>
  /** lifetime in seconds from iat, default 300 */
  expiresIn?: number
  /** no `exp` claim at all */
  noExp?: boolean
  /** issued-at (epoch seconds), default now */
  iat?: number
}

/**
 * Signs `claims` with `key`. `iat` and `exp` are added unless the claims carry their own (claims
 * win, so a test can set any exact value, including a wrong type).
 */
export async function mintToken (key: TestKey, claims: Record<string, unknown>, opts: MintOptions = {}): Promise<string> {
  const iat = opts.iat ?? Math.floor(Date.now() / 1000)
  const payload: Record<string, unknown> = {
    iat,
    ...(opts.noExp ? {} : { exp: iat + (opts.expiresIn ?? 300) }),
    ...claims,
  }
  // JSON serialization drops undefined members, which is how `typ: undefined` removes the typ.
  const header = { alg: key.alg, kid: key.kid, typ: 'at+jwt', ...opts.header } as JWTHeaderParameters
  return new SignJWT(payload).setProtectedHeader(header).sign(key.privateKey)
}

/** An unsecured JWT (`alg: none`, empty signature): what a verifier must always refuse. */
export function mintUnsecuredToken (claims: Record<string, unknown>, opts: Pick<MintOptions, 'expiresIn' | 'noExp' | 'iat'> = {}): string {
  const iat = opts.iat ?? Math.floor(Date.now() / 1000)
  return new UnsecuredJWT({ iat, ...(opts.noExp ? {} : { exp: iat + (opts.expiresIn ?? 300) }), ...claims }).encode()
}
