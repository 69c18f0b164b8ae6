/**
 * The two shapes of the config: `RawConfig` is what the file says once validated and defaulted (see
 * `schema.ts`, whose JSON Schema it mirrors; `test/unit/config-schema.test.ts` pins the two together);
 * `CompiledConfig` is what the request path reads: Sets, matchers and numbers in milliseconds, built
 * once by `compile.ts` and deep-frozen.
 */
import type { KeyObject } from 'node:crypto'
import type { CompiledCors } from '../cors/cors-headers.js'
import type { IpMatcher } from '../net/ip-matcher.js'
import type { HostPattern } from '../routing/match-host.js'

/** A duration as written in the config: `250ms`, `30s`, `10m`, `24h`, `1d`. */
export type DurationText = string

/** A claim location: a top-level claim name (which may contain dots and slashes), or a list of segments. */
export type ClaimPath = string | string[]

export interface RawListener {
  host: string
  port: number
  /** Absent: plaintext (docs/tls.md). */
  tls?: RawListenerTls
}

/** A listener's TLS: PEM file paths, relative to the config file's directory. */
export interface RawListenerTls {
  cert: string
  key: string
  /** The CA bundle client certificates must chain to; required when `clientCertificate` is not `none`. */
  clientCa?: string
  clientCertificate: 'none' | 'request' | 'require'
  minVersion: 'TLSv1.2' | 'TLSv1.3'
}

/** The proxy listener also speaks HTTP/2 when asked. */
export interface RawProxyListener extends RawListener {
  http2: boolean
}

/** The status page on the admin listener (docs/observability.md#status-page). */
export interface RawStatusPage {
  enabled: boolean
  /** The admin token that lets a non-loopback peer in; absent or empty: loopback only. */
  token?: string
  /** Denials kept for the page's feed (per process). */
  recentDenials: number
  /** Live feeds (`/status/events`) open at once, per process. */
  maxConnections: number
}

/** The admin listener: an address, and the status page it may serve. */
export interface RawAdminListener extends RawListener {
  status: RawStatusPage
}

export interface RawServer {
  proxy: RawProxyListener
  admin: RawAdminListener
  trustProxy: boolean | string[]
  workers: number | 'auto'
  requestTimeout: DurationText
  shutdownTimeout: DurationText
  maxHeaderSize: number
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  forwarded: RawForwarding
  /** The Envoy ext_authz gRPC listener (docs/istio.md); absent: off. */
  extAuthz?: RawExtAuthzListener
  /** The header a trusted ingress passes the client certificate in, for forward auth (docs/tls.md). */
  clientCertificateHeader?: RawClientCertificateHeader
}

/** The ext_authz gRPC listener: h2c, or gRPC over TLS with `tls` (docs/istio.md). */
export interface RawExtAuthzListener {
  host: string
  port: number
  /** Absent: plaintext h2c (docs/istio.md#tls). */
  tls?: RawListenerTls
}

/** `pem`: a URL-encoded PEM (nginx `$ssl_client_escaped_cert`); `xfcc`: Envoy's `x-forwarded-client-cert`. */
export interface RawClientCertificateHeader { name: string, format: 'pem' | 'xfcc' }

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
  requireCertificateBinding: boolean
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
  introspection?: RawIntrospection
}

/** An issuer's RFC 7662 introspection (docs/opaque-tokens.md). */
export interface RawIntrospection {
  /** Absent: the discovery document's `introspection_endpoint`. */
  endpoint?: string
  clientId: string
  clientSecret?: string
  /** A file holding the client secret (trailing newline ignored). */
  clientSecretFile?: string
  /** A PEM (PKCS #8) private key for `private_key_jwt`. */
  privateKeyFile?: string
  authMethod: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt'
  /** Tokens that are not JWTs go to this issuer (at most one issuer may say so). */
  opaqueTokens: boolean
  /** JWTs whose `iss` names this issuer are introspected too, instead of verified locally. */
  jwtTokens: boolean
  /** Where roles are in the introspection response; absent: the issuer's `claims.roles`. */
  rolesClaim?: ClaimPath
  /** Ask for RFC 9701 signed answers (`application/token-introspection+jwt`), verified with the issuer's keys. */
  jwtResponse: boolean
  /** Longest life of a cached active answer (the revocation window). */
  cacheTtl: DurationText
  /** Life of a cached `active: false`. */
  refusalTtl: DurationText
  timeout: DurationText
  /** Sent as `Retry-After` when the endpoint fails. */
  retryAfter: DurationText
  maxBytes: number
  /** After a failed call, the least time before the next; meanwhile new tokens get 503 at once. */
  cooldown: DurationText
}

export interface RawUpstream {
  url: string
  timeout: DurationText
  /** Send the client's Host upstream rather than the upstream URL's. */
  preserveHost: boolean
  /** TLS to an https upstream (docs/tls.md, "TLS to upstreams"). */
  tls?: RawUpstreamTls
  /** HTTP/2 to the upstream: h2 by ALPN for https, prior knowledge for http (docs/grpc.md). */
  http2: boolean
}

/** File paths are relative to the config file's directory. */
export interface RawUpstreamTls {
  /** PEM CA bundle the upstream's certificate must chain to, in place of the system's. */
  ca?: string
  /** The name sent as SNI and checked in the certificate, in place of the URL's host. */
  servername?: string
  /** PEM client certificate (and chain) presented to the upstream, with `key`. */
  cert?: string
  /** PEM private key of `cert`. */
  key?: string
  /** Accept any certificate: warned about by `validate` and at start-up. */
  insecureSkipVerify: boolean
}

export interface RawPolicy {
  issuers?: string[]
  network?: { allow?: string[], deny?: string[] }
  audience?: { allow?: string[], deny?: string[], denyMissing?: boolean }
  clients?: { allow?: string[], deny?: string[], denyMissing?: boolean }
  grants?: { roles?: Record<string, string[]>, clients?: Record<string, string[]> }
  scopes?: { require?: string[], match?: 'all' | 'any' }
  denyStatus?: { policy?: 401 | 403, scope?: 401 | 403 }
  /** Roles the token must hold (docs/policy.md, "Roles"). */
  roles?: { require?: string[], match?: 'all' | 'any' }
  /** Conditions on the claims and the request, each declarative or CEL (docs/policy.md, "Conditions"). */
  conditions?: RawCondition[]
}

/** A JSON scalar a declarative condition compares a claim with. */
export type ClaimScalar = string | number | boolean

/** One condition: `claim` with exactly one operator, or `cel` alone (docs/policy.md, "Conditions"). */
export interface RawCondition {
  claim?: ClaimPath
  equals?: ClaimScalar
  in?: ClaimScalar[]
  contains?: ClaimScalar
  atLeast?: number | string
  /** The order `atLeast` compares string levels in, lowest first. */
  levels?: string[]
  /** The claim is a NumericDate no older than this. */
  maxAge?: DurationText
  exists?: boolean
  cel?: string
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

/** A route's rate limit (docs/rate-limits.md). */
export interface RawRateLimit {
  /** Requests allowed per window, per key. */
  limit: number
  window: DurationText
  /** What a bucket is kept per: any combination. */
  key: Array<'client' | 'subject' | 'route' | 'address'>
  store: 'memory' | 'redis'
  /** When the store cannot answer: let the request through (`open`) or answer 503 (`closed`). */
  onStoreError: 'open' | 'closed'
}

/** State shared between replicas (docs/rate-limits.md#redis). */
export interface RawRedis {
  url: string
  keyPrefix: string
  timeout: DurationText
}

/** A route's CORS (docs/cors.md). */
export interface RawCors {
  origins: string[]
  /** Absent: the route's methods, or every common method. */
  methods?: string[]
  headers: string[]
  exposeHeaders: string[]
  credentials: boolean
  maxAge: DurationText
}

export interface RawRoute {
  id: string
  /** `host`: a name or `*.` and one; absent: every host (docs/policy.md, "Hosts"). */
  match: { path: string, prefix: boolean, methods?: string[], host?: string }
  upstream: string
  stripPrefix: boolean
  auth: 'required' | 'optional' | 'none'
  mode: 'enforce' | 'audit'
  policy: RawPolicy
  forward: RawForward
  websocket: RawWebsocket
  rateLimit?: RawRateLimit
  cors?: RawCors
  forwardAuth?: RawForwardAuth
  requireDpop: boolean
  requireCertificateBinding: boolean
}

/** A route's forward-auth answers (docs/forward-auth.md, "Caching decisions"). */
export interface RawForwardAuth {
  /** false: every answer is `cache-control: no-store`, so an ingress asks on each request. */
  cacheHints: boolean
  /** How long an ingress may keep a denial that depends only on its cache key; `0s`: never. */
  denialCache: DurationText
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
  telemetry: RawTelemetry
}

/** OpenTelemetry tracing (docs/observability.md#tracing); a key left out comes from its `OTEL_*` variable. */
export interface RawTelemetry {
  tracing: {
    enabled: boolean
    endpoint?: string
    sampler?: TraceSampler
    ratio?: number
    serviceName?: string
  }
  propagation: { trust: PropagationTrust }
}

/** The `OTEL_TRACES_SAMPLER` names scopegate supports. */
export type TraceSampler = 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio'

/** Whose `traceparent` is continued: `server.trustProxy` peers', everyone's, or no one's. */
export type PropagationTrust = 'trusted' | 'always' | 'never'

/** DPoP proofs (docs/dpop.md). */
export interface RawDpop {
  algorithms: string[]
  proofLifetime: DurationText
  clockSkew: DurationText
  replay: { store: 'memory' | 'redis', maxEntries: number, onStoreFailure: 'deny' | 'allow' }
  nonce: { enabled: boolean, secret?: string, window: DurationText }
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
  /** Every token of this issuer must carry `cnf.x5t#S256` matching the client certificate (docs/tls.md). */
  requireCertificateBinding: boolean
  claims: {
    scope: readonly ClaimSegments[]
    roles: ClaimSegments
    clientId: readonly ClaimSegments[]
    subject: ClaimSegments
  }
  jwks: CompiledJwksOptions
  /** Absent: the issuer's tokens are verified locally only. */
  introspection?: CompiledIntrospection
}

/** A value that never prints: `toJSON`, `toString` and `util.inspect` show `[redacted]`. */
export interface SecretValue {
  reveal: () => string
}

/** How scopegate authenticates to the introspection endpoint. */
export type IntrospectionAuth =
  | { method: 'client_secret_basic' | 'client_secret_post', secret: SecretValue }
  | { method: 'private_key_jwt', key: KeyObject, alg: string }

export interface CompiledIntrospection {
  /** The configured endpoint, or the discovery document it is read from. */
  endpoint: { kind: 'url', url: string } | { kind: 'discovery', url: string }
  clientId: string
  auth: IntrospectionAuth
  opaqueTokens: boolean
  jwtTokens: boolean
  roles: ClaimSegments
  jwtResponse: boolean
  cacheTtlMs: number
  refusalTtlMs: number
  timeoutMs: number
  retryAfterSec: number
  maxBytes: number
  cooldownMs: number
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
  /** TLS options for an https upstream, files read; null for http, or https with the system CAs and no options. */
  tls: CompiledUpstreamTls | null
  http2: boolean
}

/** An upstream's TLS options as `tls.connect` takes them, files read at load time. */
export interface CompiledUpstreamTls {
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
  /** SNI and the name checked in the certificate; undefined: the URL's host (none for an IP address). */
  servername?: string
  rejectUnauthorized: boolean
}

/** A grant set: `all` when the map entry holds `"*"`. */
export type Grant = { all: true } | { all: false, scopes: ReadonlySet<string> }

/** What a condition that reads the request is given besides the claims. */
export interface RequestFacts {
  method: string
  /** As routes compare it: lower-case, no port ('' when the request names none). */
  host: string
  /** The normalized path. */
  path: string
  clientIp: string
  /** Milliseconds since the epoch. */
  nowMs: number
}

/** What one condition found: whether it holds, the value it judged (for explain), and why it could not. */
export interface ConditionResult {
  pass: boolean
  value: unknown
  /** A runtime error (a missing claim in CEL, a claim of the wrong type): the condition fails, and the log says why. */
  error?: string
}

/** A condition compiled at load; `evaluate` never throws. */
export interface CompiledCondition {
  /** How explain and the logs name it: `tenant in [acme, globex]`, or the CEL text. */
  label: string
  /** Reads the request or the clock, so its answer cannot be remembered per token. */
  perRequest: boolean
  /** `request` is null for conditions that do not read it (`perRequest` false). */
  evaluate (claims: Readonly<Record<string, unknown>>, request: RequestFacts | null): ConditionResult
}

export interface CompiledPolicy {
  /** Issuer ids accepted on this route; null: every configured issuer. */
  issuers: ReadonlySet<string> | null
  network: { allow: IpMatcher | null, deny: IpMatcher | null }
  audience: { allow: ReadonlySet<string> | null, deny: ReadonlySet<string>, denyMissing: boolean }
  clients: { allow: ReadonlySet<string> | null, deny: ReadonlySet<string>, denyMissing: boolean }
  grants: { roles: ReadonlyMap<string, Grant> | null, clients: ReadonlyMap<string, Grant> | null }
  scopes: { require: readonly string[], match: 'all' | 'any' }
  denyStatus: { policy: number, scope: number }
  /** Required roles; empty: none. */
  roles: { require: readonly string[], match: 'all' | 'any' }
  /** `token`: depend on the token and route alone (remembered per token); `request`: read the request or the clock. */
  conditions: { token: readonly CompiledCondition[], request: readonly CompiledCondition[] }
}

export interface CompiledRoute {
  id: string
  /** Index in the config's `routes`, for error messages. */
  index: number
  path: string
  prefix: boolean
  /** Upper-case methods; null: every method. HEAD is implied by GET. */
  methods: ReadonlySet<string> | null
  /** The host the route answers for; null: every host. */
  host: HostPattern | null
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
  /** Every token on this route must carry `cnf.x5t#S256` matching the client certificate (docs/tls.md). */
  requireCertificateBinding: boolean
  /** null: no limit on this route. */
  rateLimit: CompiledRateLimit | null
  /** null: no CORS on this route (no preflight answered, no CORS fields). */
  cors: CompiledCors | null
  /** false: forward-auth allows are `no-store` (`forwardAuth.cacheHints`). */
  cacheHints: boolean
  /** Seconds an ingress may keep a cacheable forward-auth denial; 0: never (`forwardAuth.denialCache`, off with `cacheHints`). */
  denialCacheSeconds: number
}

export interface CompiledRateLimit {
  limit: number
  windowMs: number
  key: ReadonlyArray<RawRateLimit['key'][number]>
  store: 'memory' | 'redis'
  onStoreError: 'open' | 'closed'
  /** The `RateLimit-Policy` field value, built once: `"<route id>";q=<limit>;w=<window seconds>`. */
  policyField: string
}

export interface CompiledRedis {
  url: string
  keyPrefix: string
  timeoutMs: number
}

export interface CompiledServer {
  proxy: CompiledListener
  admin: CompiledListener
  /** Peers whose X-Forwarded-For (and forward-auth original-request headers) are believed; null: none. */
  trustProxy: IpMatcher | null
  workers: number
  requestTimeoutMs: number
  shutdownTimeoutMs: number
  maxHeaderSize: number
  logLevel: RawServer['logLevel']
  /** As in the file, with `clientIpHeaders` lower-cased. */
  forwarded: Readonly<RawForwarding>
  /** The Envoy ext_authz gRPC listener; null: off. `http2` is always false there (gRPC is HTTP/2 anyway). */
  extAuthz: CompiledListener | null
  /** Forward auth's client-certificate header, name lower-cased; null: none is read. */
  clientCertificateHeader: Readonly<RawClientCertificateHeader> | null
  /** The status page on the admin listener; null: off (docs/observability.md#status-page). */
  statusPage: CompiledStatusPage | null
}

/** A listener as the gateway opens it (docs/tls.md). */
export interface CompiledListener {
  host: string
  port: number
  /** Null: plaintext. */
  tls: CompiledTls | null
  /** h2 by ALPN (TLS) or h2c by prior knowledge (plaintext); always false on the admin listener. */
  http2: boolean
}

/** A listener's TLS with its files resolved; they are read (and re-read on rotation) by the listener itself. */
export interface CompiledTls {
  cert: string
  key: string
  clientCa: string | null
  clientCertificate: RawListenerTls['clientCertificate']
  minVersion: RawListenerTls['minVersion']
  /** What `validate` and start-up warn about (an expired certificate), with config paths. */
  warnings: ReadonlyArray<{ path: string, message: string }>
}

export interface CompiledStatusPage {
  /** null: only loopback peers get in. */
  token: SecretValue | null
  recentDenials: number
  maxConnections: number
}

export interface CompiledConfig {
  /** The file it came from, for messages; '<inline>' when built from an object. */
  source: string
  server: CompiledServer
  /** Keyed by the exact `iss` value. */
  issuersByIss: ReadonlyMap<string, CompiledIssuer>
  issuersById: ReadonlyMap<string, CompiledIssuer>
  /** The issuer that tokens which are not JWTs are introspected at (docs/opaque-tokens.md); null: none. */
  opaqueIssuer?: CompiledIssuer
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
  telemetry: CompiledTelemetry
}

/** Tracing as the file says it; the `OTEL_*` variables fill in what it leaves null when tracing starts. */
export interface CompiledTelemetry {
  tracing: { enabled: boolean, endpoint: string | null, sampler: TraceSampler | null, ratio: number | null, serviceName: string | null }
  propagation: { trust: PropagationTrust }
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
