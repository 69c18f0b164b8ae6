/**
 * The two shapes of the config: `RawConfig` is what the file says once validated and defaulted (see
 * `schema.ts`, whose JSON Schema it mirrors; `test/unit/config-schema.test.ts` pins the two together);
 * `CompiledConfig` is what the request path reads: Sets, matchers and numbers in milliseconds, built
 * once by `compile.ts` and deep-frozen.
 */
import type { IpMatcher } from '../net/ip-matcher.js'

/** A duration as written in the config: `250ms`, `30s`, `10m`, `24h`, `1d`. */
export type DurationText = string

/** A claim location: a top-level claim name (which may contain dots and slashes), or a list of segments. */
export type ClaimPath = string | string[]

export interface RawListener { host: string, port: number }

export interface RawServer {
  proxy: RawListener
  admin: RawListener
  trustProxy: boolean | string[]
  workers: number | 'auto'
  requestTimeout: DurationText
  shutdownTimeout: DurationText
  maxHeaderSize: number
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  forwarded: RawForwarding
}

/** The forwarding headers sent upstream (see docs/proxying.md, "Forwarding headers and trust"). */
export interface RawForwarding {
  /** `append`: the trusted part of the client's chain, then the socket peer; `replace`: the client address alone. */
  xForwardedFor: 'append' | 'replace' | 'remove'
  xForwardedProto: boolean
  xForwardedHost: boolean
  xForwardedPort: boolean
  /** RFC 7239 `Forwarded`, built from the same addresses. */
  forwarded: boolean
  /** Headers set to the decided client address, e.g. `X-Real-IP`. */
  clientIpHeaders: string[]
}

export interface RawJwksOptions {
  refreshInterval: DurationText
  cooldown: DurationText
  timeout: DurationText
  maxStale: DurationText
  maxBytes: number
}

export interface RawIssuer {
  id: string
  issuer: string
  discovery?: boolean
  jwksUri?: string
  algorithms: string[]
  audiences: string[]
  clockTolerance: DurationText
  requireTyp: boolean
  requireDpop: boolean
  claims: {
    /** Alternatives, first present wins; each a top-level name or a list of segments. */
    scope: ClaimPath[]
    /** One claim: a top-level name, or a list of segments for a nested claim. */
    roles: ClaimPath
    /** Alternatives, first present wins. */
    clientId: ClaimPath[]
    subject: ClaimPath
  }
  jwks: RawJwksOptions
}

export interface RawUpstream {
  url: string
  timeout: DurationText
  /** Send the client's Host upstream rather than the upstream URL's. */
  preserveHost: boolean
}

export interface RawPolicy {
  issuers?: string[]
  network?: { allow?: string[], deny?: string[] }
  audience?: { allow?: string[], deny?: string[], denyMissing?: boolean }
  clients?: { allow?: string[], deny?: string[], denyMissing?: boolean }
  grants?: { roles?: Record<string, string[]>, clients?: Record<string, string[]> }
  scopes?: { require?: string[], match?: 'all' | 'any' }
  denyStatus?: { policy?: 401 | 403, scope?: 401 | 403 }
}

export interface RawForward {
  authorization: 'keep' | 'strip' | 'reissue'
  audience?: string
  claims?: Record<string, ClaimPath>
  /** Client headers removed on this route, besides the built-in list. */
  stripHeaders: string[]
}

/** A route's WebSocket settings (docs/proxying.md, "WebSockets and Upgrade"). */
export interface RawWebsocket {
  /** Accept `Upgrade: websocket` on this route; otherwise an upgrade is refused with 400. */
  enabled: boolean
  /** Also accept the token as a `base64url.bearer.authorization.k8s.io.<token>` subprotocol (browsers). */
  subprotocolToken: boolean
  /** Close an open WebSocket (1008) when its token expires. */
  closeOnExpiry: boolean
  /** Re-decide open WebSockets on a config reload; close (1008) those the new config denies. */
  closeOnReload: boolean
}

export interface RawRoute {
  id: string
  match: { path: string, prefix: boolean, methods?: string[] }
  upstream: string
  stripPrefix: boolean
  auth: 'required' | 'optional' | 'none'
  mode: 'enforce' | 'audit'
  policy: RawPolicy
  forward: RawForward
  websocket: RawWebsocket
  requireDpop: boolean
}

export interface RawReissue {
  issuer: string
  ttl: DurationText
  algorithm: 'ES256' | 'EdDSA' | 'RS256' | 'PS256'
  /** The JWKS address the discovery document names. Absent: `<issuer>/.well-known/jwks.json`. */
  jwksUri?: string
  /** Private JWK or PEM files; the first signs, all are published. Absent: a key is generated at start-up. */
  keys?: Array<{ file: string }>
}

export interface RawConfig {
  server: RawServer
  issuers: RawIssuer[]
  upstreams: Record<string, RawUpstream>
  reissue?: RawReissue
  defaults: { policy: RawPolicy }
  routes: RawRoute[]
  dpop: RawDpop
  redis?: RawRedis
}

/** DPoP proofs (docs/dpop.md). */
export interface RawDpop {
  algorithms: string[]
  proofLifetime: DurationText
  clockSkew: DurationText
  replay: { store: 'memory' | 'redis', maxEntries: number, onStoreFailure: 'deny' | 'allow' }
  nonce: { enabled: boolean, secret?: string, window: DurationText }
}

/** State shared between replicas. */
export interface RawRedis {
  url: string
  keyPrefix: string
  timeout: DurationText
}

/* ------------------------------------------------------------------ compiled ------------------------------------------------------------------ */

/** A compiled claim location: always a list of segments. */
export type ClaimSegments = readonly string[]

export interface CompiledJwksOptions {
  refreshIntervalMs: number
  cooldownMs: number
  timeoutMs: number
  maxStaleMs: number
  maxBytes: number
}

export interface CompiledIssuer {
  id: string
  /** Exact `iss` value. */
  issuer: string
  /** Where keys come from: a JWKS URL, or the issuer's discovery document. */
  keys: { kind: 'jwksUri', url: string } | { kind: 'discovery', url: string }
  algorithms: ReadonlySet<string>
  audiences: ReadonlySet<string>
  clockToleranceSec: number
  requireTyp: boolean
  requireDpop: boolean
  claims: {
    scope: readonly ClaimSegments[]
    roles: ClaimSegments
    clientId: readonly ClaimSegments[]
    subject: ClaimSegments
  }
  jwks: CompiledJwksOptions
}

export interface CompiledUpstream {
  id: string
  /** Origin plus base path with no trailing slash, e.g. `http://todo-api:3000` or `http://svc/api`. */
  base: string
  /** `base` split once at load time, so the request path never parses a URL: `http://svc` and `/api` (or ''). */
  origin: string
  basePath: string
  timeoutMs: number
  /** The upstream URL's host (and port, when not the scheme's default): the Host sent unless `preserveHost`. */
  host: string
  preserveHost: boolean
}

/** A grant set: `all` when the map entry holds `"*"`. */
export type Grant = { all: true } | { all: false, scopes: ReadonlySet<string> }

export interface CompiledPolicy {
  /** Issuer ids accepted on this route; null: every configured issuer. */
  issuers: ReadonlySet<string> | null
  network: { allow: IpMatcher | null, deny: IpMatcher | null }
  audience: { allow: ReadonlySet<string> | null, deny: ReadonlySet<string>, denyMissing: boolean }
  clients: { allow: ReadonlySet<string> | null, deny: ReadonlySet<string>, denyMissing: boolean }
  grants: { roles: ReadonlyMap<string, Grant> | null, clients: ReadonlyMap<string, Grant> | null }
  scopes: { require: readonly string[], match: 'all' | 'any' }
  denyStatus: { policy: number, scope: number }
}

export interface CompiledRoute {
  id: string
  /** Index in the config's `routes`, for error messages. */
  index: number
  path: string
  prefix: boolean
  /** Upper-case methods; null: every method. HEAD is implied by GET. */
  methods: ReadonlySet<string> | null
  upstream: CompiledUpstream
  stripPrefix: boolean
  auth: 'required' | 'optional' | 'none'
  mode: 'enforce' | 'audit'
  policy: CompiledPolicy
  forward: {
    authorization: 'keep' | 'strip' | 'reissue'
    audience: string
    /** Lower-case header name to claim location. */
    claims: ReadonlyMap<string, ClaimSegments>
    /** Lower-case client header names never sent upstream: the built-in list and the route's own. */
    stripHeaders: ReadonlySet<string>
  }
  /** As configured; `enabled: false` refuses every upgrade on the route. */
  websocket: Readonly<RawWebsocket>
  requireDpop: boolean
}

export interface CompiledServer {
  proxy: RawListener
  admin: RawListener
  /** Peers whose X-Forwarded-For (and forward-auth original-request headers) are believed; null: none. */
  trustProxy: IpMatcher | null
  workers: number
  requestTimeoutMs: number
  shutdownTimeoutMs: number
  maxHeaderSize: number
  logLevel: RawServer['logLevel']
  /** As in the file, with `clientIpHeaders` lower-cased. */
  forwarded: Readonly<RawForwarding>
}

export interface CompiledConfig {
  /** The file it came from, for messages; '<inline>' when built from an object. */
  source: string
  server: CompiledServer
  /** Keyed by the exact `iss` value. */
  issuersByIss: ReadonlyMap<string, CompiledIssuer>
  issuersById: ReadonlyMap<string, CompiledIssuer>
  upstreams: ReadonlyMap<string, CompiledUpstream>
  routes: readonly CompiledRoute[]
  /** Every lower-case header name scopegate sets upstream, which client copies are stripped of. */
  identityHeaders: ReadonlySet<string>
  reissue: RawReissue | null
  /**
   * Whether verified tokens keep their whole payload: only routes that forward claims or re-issue tokens
   * read it. Otherwise the token cache holds the identity alone, about half the memory per token.
   */
  keepClaims: boolean
  dpop: CompiledDpop
  redis: CompiledRedis | null
}

/** DPoP proofs (docs/dpop.md), durations in milliseconds. */
export interface CompiledDpop {
  algorithms: ReadonlySet<string>
  /** The `algs` of a DPoP challenge: the algorithms, space-separated. */
  algs: string
  proofLifetimeMs: number
  clockSkewMs: number
  replay: { store: 'memory' | 'redis', maxEntries: number, onStoreFailure: 'deny' | 'allow' }
  /** Null: server nonces are off. `secret` null: a random per-process secret (one replica, one worker). */
  nonce: { secret: string | null, windowMs: number } | null
}

export interface CompiledRedis {
  url: string
  keyPrefix: string
  timeoutMs: number
}
