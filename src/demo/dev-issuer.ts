/**
 * A development issuer for the demo and the `token` command: one fresh ES256 key, a discovery document,
 * a JWKS, and a token endpoint that mints whatever it is asked for. It listens on loopback only and is
 * never part of `serve`: it exists so that `npm start` shows real tokens being verified end to end.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SignJWT, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose'

/** The claim the demo config reads roles from: a namespaced top-level claim, as Auth0 issues them. */
export const DEMO_ROLES_CLAIM = 'https://scopegate.dev/roles'

export interface DemoKey {
  issuer: string
  /** Private JWK with kid and alg. */
  privateJwk: JWK
}

export interface MintRequest {
  sub?: string
  client?: string
  /** One audience, several (comma-separated on the command line), or none. */
  aud?: string | string[]
  scope?: string
  roles?: string[]
  /** Lifetime in seconds (negative: already expired). */
  exp?: number
}

export async function createDemoKey (issuer: string): Promise<DemoKey> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true })
  const privateJwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'ES256', use: 'sig' }
  return { issuer, privateJwk }
}

export function publicJwk (key: DemoKey): JWK {
  const { d: _d, ...pub } = key.privateJwk
  return pub
}

export async function mintDemoToken (key: DemoKey, request: MintRequest): Promise<string> {
  const privateKey = await importJWK(key.privateJwk, 'ES256')
  const claims: Record<string, unknown> = { client_id: request.client ?? 'demo-client', jti: randomUUID() }
  if (request.scope !== undefined) claims.scope = request.scope
  if (request.roles !== undefined) claims[DEMO_ROLES_CLAIM] = request.roles
  const now = Math.floor(Date.now() / 1000)
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: key.privateJwk.kid as string, typ: 'at+jwt' })
    .setIssuer(key.issuer)
    .setSubject(request.sub ?? 'demo-user')
    .setIssuedAt(now)
    .setExpirationTime(now + (request.exp ?? 3600))
  if (request.aud !== undefined && request.aud.length > 0) jwt.setAudience(request.aud)
  return jwt.sign(privateKey)
}

export interface DevIssuer {
  url: string
  key: DemoKey
  close (): Promise<void>
}

/**
 * Start the dev issuer on 127.0.0.1 (port 0 unless given). Its `POST /token` takes form or JSON fields of
 * `MintRequest`. `publicUrl` is the issuer URL (`iss`, discovery, JWKS) when it is reached by another
 * name than the one it listens on, as in a container network (`http://issuer:8081`).
 */
export async function startDevIssuer (port = 0, host = '127.0.0.1', publicUrl?: string): Promise<DevIssuer> {
  const server: Server = createServer()
  await new Promise<void>((resolve) => server.listen(port, host, resolve))
  const url = publicUrl ?? `http://${host}:${(server.address() as AddressInfo).port}`
  const key = await createDemoKey(url)
  server.on('request', (req, res) => {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body))
    }
    if (req.method === 'GET' && req.url === '/.well-known/openid-configuration') {
      send(200, { issuer: url, jwks_uri: `${url}/.well-known/jwks.json`, token_endpoint: `${url}/token`, id_token_signing_alg_values_supported: ['ES256'] })
    } else if (req.method === 'GET' && req.url === '/.well-known/jwks.json') {
      send(200, { keys: [publicJwk(key)] })
    } else if (req.method === 'POST' && req.url === '/token') {
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (chunk: string) => { if (body.length < 16_384) body += chunk })
      req.on('end', () => {
        const fields = new URLSearchParams(body)
        const aud = fields.get('aud') ?? undefined
        mintDemoToken(key, {
          sub: fields.get('sub') ?? undefined,
          client: fields.get('client') ?? undefined,
          aud: aud === undefined ? undefined : aud.split(',').filter((a) => a !== ''),
          scope: fields.get('scope') ?? undefined,
          roles: fields.get('roles')?.split(',').filter((r) => r !== ''),
          exp: fields.has('exp') ? Number(fields.get('exp')) : undefined
        }).then((token) => send(200, { access_token: token, token_type: 'Bearer' }), () => send(400, { error: 'invalid_request' }))
      })
    } else {
      send(404, { error: 'not_found' })
    }
  })
  return {
    url,
    key,
    close: async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => resolve())) }
  }
}
