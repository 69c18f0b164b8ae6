/**
 * A real OpenID Provider (oidc-provider v9) for end-to-end tests.
 *
 * What it issues (observed behaviour of oidc-provider v9, client_credentials grant):
 * - With `resource=<url>` naming a configured resource: an RFC 9068 JWT access token, header
 *   `{alg: 'RS256', kid, typ: 'at+jwt'}`, claims `iss` (= `issuer`, exactly), `aud` (= the resource
 *   string as passed, a single string), `sub` (= client id), `client_id`, `scope`, `jti`, `iat`, `exp`,
 *   plus the client's `extraClaims` (they cannot override the standard claims).
 * - `scope`: only the requested scopes that the resource accepts; scopes the client may not use are an
 *   `invalid_scope` error. With no `scope` requested the token carries no `scope` claim at all (unlike
 *   Auth0, oidc-provider does not default to "every granted scope").
 * - Without `resource`: an OPAQUE access token (a random string, not a JWT). oidc-provider refuses to
 *   produce a JWT access token without an audience ("JWT Access Tokens must contain an audience"), even
 *   through `formats.customizers.jwt`, so a JWT lacking `aud` cannot come from this IdP: mint one with
 *   `mintToken` from ./jwks-server.js instead.
 * - An unknown resource is an `invalid_target` error.
 */
import http from 'node:http'
import { randomUUID } from 'node:crypto'
import { exportJWK, generateKeyPair, type JWK } from 'jose'
import { closeServer, listenLocal, trackSockets } from './echo-upstream.js'

export interface IdpClient {
  clientId: string
  clientSecret: string
  /** space-delimited scopes the client may request; omitted: any */
  scope?: string
  /** merged into every access token issued to this client, e.g. {'https://scopegate.test/roles': ['editor']} */
  extraClaims?: Record<string, unknown>
}

export interface TokenRequest {
  clientId: string
  resource?: string
  scope?: string
  /** A DPoP proof for the token request (`htm` POST, `htu` the token endpoint): the token is then DPoP-bound (`cnf.jkt`). */
  dpop?: string
}

export interface Idp {
  /** e.g. http://127.0.0.1:PORT (no trailing slash); equals the `iss` of every token */
  issuer: string
  jwksUri: string
  tokenEndpoint: string
  /** POSTs to the token endpoint; resolves to the access token, rejects with the OAuth error otherwise */
  token(opts: TokenRequest): Promise<string>
  /** kid of the key that signs new tokens */
  currentKid(): string
  /**
   * Signs from now on with a fresh key (new kid). keepOld (default true) keeps the previous keys
   * published in the JWKS, as a real rotation does; false drops them, so tokens signed earlier no longer
   * verify against a freshly fetched JWKS.
   */
  rotateKeys(opts?: { keepOld?: boolean }): Promise<void>
  /** GET requests received on the jwks endpoint since start */
  jwksFetches(): number
  /** POST requests received on the introspection endpoint since start (0 unless `introspection`) */
  introspections(): number
  close(): Promise<void>
}

export interface StartIdpOptions {
  clients: IdpClient[]
  /** resource indicator (= `aud` of its tokens) -> space-delimited scopes that API accepts */
  resources: Record<string, { scope: string }>
  /** access token lifetime in seconds, default 300 */
  accessTokenTtl?: number
  /** serve RFC 7662 introspection at /token/introspection (any authenticated client may introspect any token) */
  introspection?: boolean
}

// ---- the small part of oidc-provider's API used here (the package ships no types) ----

interface OidcToken { clientId?: string }
interface ResourceServerInfo {
  scope: string
  audience?: string
  accessTokenTTL?: number
  accessTokenFormat?: 'opaque' | 'jwt'
  jwt?: { sign?: { alg?: string } }
}
interface ProviderInstance {
  callback(): http.RequestListener
  on(event: string, listener: (...args: unknown[]) => void): this
}
interface OidcProviderModule {
  default: new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance
  errors: { InvalidTarget: new (description?: string) => Error }
}

/**
 * oidc-provider v9 warns "Unsupported runtime" on import under Node 20 (it targets Node >= 22 LTS);
 * everything used here works on Node 20, so only that one line is dropped from the test output.
 */
async function withoutRuntimeWarning<T> (load: () => Promise<T>): Promise<T> {
  const warn = console.warn
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime')) return
    warn(...args)
  }
  try {
    return await load()
  } finally {
    console.warn = warn
  }
}

// Imported through a variable so TypeScript does not look for declarations that do not exist
// (TS7016); the shape above is checked where it is used instead.
const OIDC_PROVIDER = 'oidc-provider'
const { default: Provider, errors } = await withoutRuntimeWarning(
  async () => (await import(OIDC_PROVIDER)) as OidcProviderModule
)

/**
 * Storage for the provider's stateful artifacts (only opaque access tokens, here). Supplying one keeps
 * oidc-provider from warning about its built-in dev adapter, and one store per IdP lets opaque tokens
 * survive rotateKeys(), which builds a new Provider.
 */
type Stored = Record<string, unknown>
function mapAdapter (store: Map<string, Stored>) {
  return class MapAdapter {
    constructor (private readonly model: string) {}
    private key (id: string): string {
      return `${this.model}:${id}`
    }

    async upsert (id: string, payload: Stored): Promise<void> {
      store.set(this.key(id), payload)
    }

    async find (id: string): Promise<Stored | undefined> {
      return store.get(this.key(id))
    }

    async findByUid (uid: string): Promise<Stored | undefined> {
      return [...store.values()].find((p) => p.uid === uid)
    }

    async findByUserCode (userCode: string): Promise<Stored | undefined> {
      return [...store.values()].find((p) => p.userCode === userCode)
    }

    async consume (id: string): Promise<void> {
      const payload = store.get(this.key(id))
      if (payload) payload.consumed = Math.floor(Date.now() / 1000)
    }

    async destroy (id: string): Promise<void> {
      store.delete(this.key(id))
    }

    async revokeByGrantId (grantId: string): Promise<void> {
      for (const [k, p] of store) if (p.grantId === grantId) store.delete(k)
    }
  }
}

/** An RS256 private JWK for the provider's keystore (oidc-provider wants private JWKs, with kid/use). */
async function newSigningJwk (): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk = await exportJWK(privateKey)
  return { ...jwk, kid: `idp-${randomUUID()}`, alg: 'RS256', use: 'sig' }
}

export async function startIdp (opts: StartIdpOptions): Promise<Idp> {
  const ttl = opts.accessTokenTtl ?? 300
  const clientsById = new Map(opts.clients.map((c) => [c.clientId, c]))

  // Client `scope` metadata must only name scopes the provider knows, and the provider then enforces
  // each client's list itself (invalid_scope), so every scope anyone mentions is declared here.
  const allScopes = new Set(['openid', 'offline_access'])
  for (const s of [...opts.clients.map((c) => c.scope ?? ''), ...Object.values(opts.resources).map((r) => r.scope)]) {
    for (const scope of s.split(' ')) if (scope) allScopes.add(scope)
  }

  let keys: JWK[] = [await newSigningJwk()]
  let jwksFetches = 0
  let introspections = 0
  let handler: http.RequestListener = () => {}
  let lastError: Error | undefined
  const Adapter = mapAdapter(new Map())

  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url?.split('?')[0] === '/jwks') jwksFetches++
    if (req.method === 'POST' && req.url?.split('?')[0] === '/token/introspection') introspections++
    // Always the current provider: rotation swaps it without touching the listener or the port.
    handler(req, res)
  })
  const sockets = trackSockets(server)
  const port = await listenLocal(server)
  const issuer = `http://127.0.0.1:${port}`

  const build = (): ProviderInstance => {
    const provider = new Provider(issuer, {
      clients: opts.clients.map((c) => ({
        client_id: c.clientId,
        client_secret: c.clientSecret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_post',
        ...(c.scope !== undefined ? { scope: c.scope } : {}),
      })),
      // The first key signs (oidc-provider's key selection is a stable sort, so ties keep this order);
      // the others are only published.
      jwks: { keys },
      adapter: Adapter,
      scopes: [...allScopes],
      routes: { jwks: '/jwks', token: '/token' },
      // Fixed values instead of the default functions, which print "you SHOULD change it" notices.
      ttl: { AccessToken: ttl, ClientCredentials: ttl, IdToken: ttl, Grant: ttl, Session: ttl, Interaction: ttl },
      cookies: { keys: ['scopegate-test-cookie-key'] },
      features: {
        clientCredentials: { enabled: true },
        introspection: { enabled: opts.introspection === true, allowedPolicy: async () => true },
        devInteractions: { enabled: false },
        // A token request with a DPoP proof gets a DPoP-bound token (RFC 9449); without one, a Bearer token as before.
        dPoP: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: async () => undefined,
          useGrantedResource: async () => false,
          getResourceServerInfo: async (_ctx: unknown, indicator: string): Promise<ResourceServerInfo> => {
            const resource = opts.resources[indicator]
            if (!resource) throw new errors.InvalidTarget(`unknown resource ${indicator}`)
            return {
              scope: resource.scope,
              audience: indicator,
              accessTokenTTL: ttl,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg: 'RS256' } },
            }
          },
        },
      },
      extraTokenClaims: async (_ctx: unknown, token: OidcToken) =>
        token.clientId === undefined ? undefined : clientsById.get(token.clientId)?.extraClaims,
    })
    // Kept out of the test output (negative tests provoke errors on purpose) but not lost: token()
    // reports the last one when the token endpoint fails.
    const remember = (...args: unknown[]): void => {
      lastError = args.find((a): a is Error => a instanceof Error)
    }
    provider.on('error', remember)
    provider.on('server_error', remember)
    return provider
  }
  handler = build().callback()

  const tokenEndpoint = `${issuer}/token`

  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    tokenEndpoint,
    async token ({ clientId, resource, scope, dpop }) {
      const client = clientsById.get(clientId)
      if (!client) throw new Error(`startIdp: unknown client ${clientId}`)
      const form = new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: client.clientId,
        client_secret: client.clientSecret,
      })
      if (resource !== undefined) form.set('resource', resource)
      if (scope !== undefined) form.set('scope', scope)
      const headers: Record<string, string> = dpop === undefined ? {} : { dpop }
      const res = await fetch(tokenEndpoint, { method: 'POST', body: form, headers, signal: AbortSignal.timeout(5000) })
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string }
      if (!res.ok || typeof body.access_token !== 'string') {
        const cause = res.status >= 500 ? lastError : undefined
        throw new Error(`token endpoint ${res.status}: ${body.error ?? '?'}: ${body.error_description ?? ''}`, { cause })
      }
      return body.access_token
    },
    currentKid: () => keys[0]?.kid ?? '',
    async rotateKeys ({ keepOld = true } = {}) {
      const fresh = await newSigningJwk()
      keys = keepOld ? [fresh, ...keys] : [fresh]
      handler = build().callback()
    },
    jwksFetches: () => jwksFetches,
    introspections: () => introspections,
    close: () => closeServer(server, sockets),
  }
}
