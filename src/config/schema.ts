/**
 * The JSON Schema (draft-07) of the config file, written as small named parts; docs/config.md documents each key.
 *
 * Validation fills in every default (`useDefaults`), so a config that passes is a complete `RawConfig`
 * (after `parse.ts` turns a bare-string `scope` or `clientId` into a one-item list).
 * `test/unit/config-schema.test.ts` pins this schema to the `RawConfig` type.
 *
 * Unions are written as `type: [a, b]` with keywords that apply to one type only, never as `anyOf`:
 * that keeps every error about one value, so `schema-problems.ts` can word it for an operator. Where the stock
 * wording would be cryptic, an `x-message` annotation gives the message to print, per keyword;
 * `{value}` in it stands for the offending value.
 *
 * Cross-references (a route's upstream exists, ids are unique, CIDRs parse, route overlaps) are checked
 * by `compile.ts`, which can name both sides.
 */
import { Ajv, type ValidateFunction } from 'ajv'
import { DURATION_MESSAGE, DURATION_PATTERN } from '../shared/duration.js'
import { JWS_ALGORITHMS, REFUSED_ALGORITHMS, REISSUE_ALGORITHMS } from '../token/algorithms.js'

type Schema = Record<string, unknown>

// The algorithm lists live beside the verifier, which they must match; re-exported for the schema's readers.
export { JWS_ALGORITHMS, REFUSED_ALGORITHMS, REISSUE_ALGORITHMS } from '../token/algorithms.js'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/* ------------------------------------------------------------------ scalars ------------------------------------------------------------------ */

const nonEmptyString: Schema = { type: 'string', minLength: 1 }

const stringList: Schema = { type: 'array', items: nonEmptyString }

const nonEmptyStringList: Schema = { ...stringList, minItems: 1 }

const duration: Schema = {
  type: 'string',
  pattern: DURATION_PATTERN,
  'x-message': { pattern: DURATION_MESSAGE }
}

const withDefault = (schema: Schema, value: unknown): Schema => ({ ...schema, default: value })

/** Route, issuer and upstream ids: they appear in logs, metric labels and `x-auth-route`. */
const idName: Schema = {
  type: 'string',
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
  'x-message': { pattern: 'must start with a letter or digit and contain only letters, digits, ".", "_" and "-"' }
}

const httpUrl: Schema = {
  type: 'string',
  pattern: '^https?://[^\\s/?#]+[^\\s#]*$',
  'x-message': { pattern: 'must be an http:// or https:// URL' }
}

/** An upstream base: origin plus optional base path, nothing after it. */
const upstreamUrl: Schema = {
  type: 'string',
  pattern: '^https?://[^\\s/?#]+(?:/[^\\s?#]*)?$',
  'x-message': { pattern: 'must be an http:// or https:// URL without query or fragment' }
}

/** A claim: a top-level name (dots and slashes are part of the name) or a list of nested segments. */
const claimPath: Schema = { type: ['string', 'array'], minLength: 1, minItems: 1, items: nonEmptyString }

/** Alternatives, first present wins: one claim path, or a list of them. */
const claimAlternatives: Schema = { type: ['string', 'array'], minLength: 1, minItems: 1, items: claimPath }

/** An HTTP field name (RFC 9110 token); compared without case. */
const headerName: Schema = {
  type: 'string',
  pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
  'x-message': { pattern: 'must be an HTTP header name' }
}

const method: Schema = {
  type: 'string',
  pattern: '^[A-Z][A-Z0-9_-]*$',
  'x-message': { pattern: 'must be an upper-case HTTP method such as GET' }
}

const algorithm: Schema = {
  type: 'string',
  not: { enum: REFUSED_ALGORITHMS },
  enum: JWS_ALGORITHMS,
  'x-message': { not: '{value} is refused: symmetric and none algorithms cannot be pinned' }
}

const object = (properties: Record<string, Schema>, extra: Schema = {}): Schema =>
  ({ type: 'object', additionalProperties: false, properties, ...extra })

/** A map whose keys the operator names (roles, clients, upstreams, headers). */
const mapOf = (values: Schema, extra: Schema = {}): Schema =>
  ({ type: 'object', additionalProperties: values, ...extra })

/* ------------------------------------------------------------------ server ------------------------------------------------------------------ */

/** TLS on a listener (docs/tls.md): PEM files, relative to the config file's directory, re-read when they change. */
const listenerTls: Schema = object({
  cert: nonEmptyString,
  key: nonEmptyString,
  clientCa: nonEmptyString,
  clientCertificate: { type: 'string', enum: ['none', 'request', 'require'], default: 'none' },
  minVersion: { type: 'string', enum: ['TLSv1.2', 'TLSv1.3'], default: 'TLSv1.2' }
}, { required: ['cert', 'key'] })

const listener = (host: string, port: number, extra: Record<string, Schema> = {}): Schema => object({
  host: withDefault(nonEmptyString, host),
  port: { type: 'integer', minimum: 0, maximum: 65535, default: port },
  tls: listenerTls,
  ...extra
}, { default: {} })

/** The status page (docs/observability.md#status-page): off unless enabled. */
const statusPage: Schema = object({
  enabled: { type: 'boolean', default: false },
  token: { type: 'string' },
  recentDenials: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
  maxConnections: { type: 'integer', minimum: 1, maximum: 100, default: 10 }
}, { default: {} })

const server: Schema = object({
  // http2: h2 by ALPN on a TLS listener, h2c by prior knowledge on a plaintext one (docs/tls.md).
  proxy: listener('0.0.0.0', 8080, { http2: { type: 'boolean', default: false } }),
  admin: listener('0.0.0.0', 9090, { status: statusPage }),
  trustProxy: { type: ['boolean', 'array'], items: nonEmptyString, default: false },
  workers: {
    type: ['integer', 'string'],
    minimum: 1,
    pattern: '^auto$',
    default: 1,
    'x-message': { type: 'must be a positive integer or "auto"', pattern: 'must be a positive integer or "auto"' }
  },
  requestTimeout: withDefault(duration, '30s'),
  shutdownTimeout: withDefault(duration, '10s'),
  maxHeaderSize: { type: 'integer', minimum: 1024, default: 16384 },
  logLevel: { type: 'string', enum: LOG_LEVELS, default: 'info' },
  forwarded: object({
    xForwardedFor: { type: 'string', enum: ['append', 'replace', 'remove'], default: 'append' },
    xForwardedProto: { type: 'boolean', default: true },
    xForwardedHost: { type: 'boolean', default: true },
    xForwardedPort: { type: 'boolean', default: true },
    forwarded: { type: 'boolean', default: false },
    clientIpHeaders: { type: 'array', items: headerName, uniqueItems: true, default: [] }
  }, { default: {} }),
  // The Envoy ext_authz gRPC service (docs/istio.md); absent: off.
  extAuthz: object({
    host: withDefault(nonEmptyString, '0.0.0.0'),
    port: { type: 'integer', minimum: 0, maximum: 65535, default: 9191 },
    // TLS and mTLS on the gRPC listener, as on the other two (docs/istio.md#tls).
    tls: listenerTls
  }),
  // Where forward auth reads the client certificate a trusted ingress passes on (docs/tls.md#certificate-bound-tokens-rfc-8705).
  clientCertificateHeader: object({
    name: headerName,
    format: { type: 'string', enum: ['pem', 'xfcc'], default: 'pem' }
  }, { required: ['name'] })
}, { default: {} })

/* ------------------------------------------------------------------ issuers ------------------------------------------------------------------ */

const claims: Schema = object({
  scope: withDefault(claimAlternatives, ['scope', 'scp', 'permissions']),
  roles: withDefault(claimPath, 'roles'),
  clientId: withDefault(claimAlternatives, ['client_id', 'azp']),
  subject: withDefault(claimPath, 'sub')
}, { default: {} })

const jwks: Schema = object({
  refreshInterval: withDefault(duration, '10m'),
  cooldown: withDefault(duration, '30s'),
  timeout: withDefault(duration, '5s'),
  maxStale: withDefault(duration, '24h'),
  maxBytes: { type: 'integer', minimum: 1, default: 1048576 }
}, { default: {} })

/** Where keys come from: exactly one of `discovery: true` or `jwksUri`. */
const keySource: Schema = {
  if: { type: 'object', properties: { discovery: { const: true } }, required: ['discovery'] },
  then: { properties: { jwksUri: { not: {}, 'x-message': { not: 'must not be set when discovery is true' } } } },
  else: { required: ['jwksUri'], 'x-message': { required: 'is required unless discovery: true' } }
}

/**
 * RFC 7662 introspection for an issuer's opaque tokens (docs/opaque-tokens.md). The endpoint is configured
 * or discovered, never taken from a token; the client secret is given (usually as `${VAR}`) or read from a file.
 */
const introspection: Schema = object({
  endpoint: httpUrl,
  clientId: nonEmptyString,
  clientSecret: nonEmptyString,
  clientSecretFile: nonEmptyString,
  privateKeyFile: nonEmptyString,
  authMethod: { type: 'string', enum: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'], default: 'client_secret_basic' },
  opaqueTokens: { type: 'boolean', default: true },
  jwtTokens: { type: 'boolean', default: false },
  rolesClaim: claimPath,
  jwtResponse: { type: 'boolean', default: false },
  cacheTtl: withDefault(duration, '60s'),
  refusalTtl: withDefault(duration, '10s'),
  timeout: withDefault(duration, '2s'),
  retryAfter: withDefault(duration, '5s'),
  maxBytes: { type: 'integer', minimum: 1, default: 65536 },
  // After a failed call, the least time before the next (docs/opaque-tokens.md#when-the-endpoint-fails).
  cooldown: withDefault(duration, '5s')
}, { required: ['clientId'] })

const issuer: Schema = object({
  id: idName,
  issuer: { type: 'string', pattern: '^\\S+$', 'x-message': { pattern: 'must be a non-empty string without spaces' } },
  discovery: { type: 'boolean' },
  jwksUri: httpUrl,
  algorithms: { type: 'array', minItems: 1, items: algorithm },
  audiences: nonEmptyStringList,
  clockTolerance: withDefault(duration, '30s'),
  requireTyp: { type: 'boolean', default: false },
  // Every token of this issuer must come with a DPoP proof (docs/dpop.md).
  requireDpop: { type: 'boolean', default: false },
  // Every token of this issuer must be bound to the client certificate (docs/tls.md#certificate-bound-tokens-rfc-8705).
  requireCertificateBinding: { type: 'boolean', default: false },
  claims,
  jwks,
  introspection
}, { required: ['id', 'issuer', 'algorithms', 'audiences'], ...keySource })

/* ------------------------------------------------------------------ upstreams, reissue ------------------------------------------------------------------ */

/**
 * TLS to an `https://` upstream (docs/tls.md, "TLS to upstreams"): PEM files, read at load and on reload.
 * Verification is on unless `insecureSkipVerify` says otherwise, which `validate` and start-up warn about.
 */
const upstreamTls: Schema = object({
  ca: nonEmptyString,
  servername: nonEmptyString,
  cert: nonEmptyString,
  key: nonEmptyString,
  insecureSkipVerify: { type: 'boolean', default: false }
})

const upstream: Schema = object({
  url: upstreamUrl,
  timeout: withDefault(duration, '30s'),
  preserveHost: { type: 'boolean', default: false },
  tls: upstreamTls,
  // HTTP/2 to the upstream: ALPN h2 for https, prior knowledge (h2c) for http (docs/grpc.md).
  http2: { type: 'boolean', default: false }
}, { required: ['url'] })

const reissue: Schema = object({
  issuer: httpUrl,
  ttl: withDefault(duration, '60s'),
  algorithm: { type: 'string', enum: REISSUE_ALGORITHMS, default: 'ES256' },
  // Optional: the address upstreams fetch the JWKS from, published in the discovery document.
  jwksUri: httpUrl,
  // Optional: without keys, scopegate generates one at start-up (and warns that it is not durable).
  keys: { type: 'array', minItems: 1, items: object({ file: nonEmptyString }, { required: ['file'] }) }
}, { required: ['issuer'] })

/* ------------------------------------------------------------------ policy ------------------------------------------------------------------ */

const allowDeny: Schema = object({ allow: stringList, deny: stringList })

const allowDenyMissing: Schema = object({ allow: stringList, deny: stringList, denyMissing: { type: 'boolean' } })

/** Principal (role or client id) to the scopes it grants; `"*"` grants every requested scope. */
const grantMap: Schema = mapOf(stringList)

const denyStatus: Schema = { type: 'integer', enum: [401, 403] }

/** A value a declarative condition compares a claim with. */
const claimScalar: Schema = { type: ['string', 'number', 'boolean'] }

/**
 * One condition (docs/policy.md, "Conditions"): `claim` and one operator, or `cel` alone. Which keys go
 * together is checked by `compile.ts`, which also parses and type-checks the CEL; its size is bounded here.
 */
const condition: Schema = object({
  claim: claimPath,
  equals: claimScalar,
  in: { type: 'array', minItems: 1, items: claimScalar },
  contains: claimScalar,
  atLeast: { type: ['number', 'string'], minLength: 1 },
  levels: { ...nonEmptyStringList, uniqueItems: true },
  maxAge: duration,
  exists: { type: 'boolean' },
  cel: { type: 'string', minLength: 1, maxLength: 1024 }
})

/** No defaults here: a route's policy is merged over `defaults.policy` key by key in `compile.ts`. */
const policy: Schema = object({
  issuers: nonEmptyStringList,
  network: allowDeny,
  audience: allowDenyMissing,
  clients: allowDenyMissing,
  grants: object({ roles: grantMap, clients: grantMap }),
  scopes: object({ require: stringList, match: { type: 'string', enum: ['all', 'any'] } }),
  denyStatus: object({ policy: denyStatus, scope: denyStatus }),
  roles: object({ require: stringList, match: { type: 'string', enum: ['all', 'any'] } }),
  conditions: { type: 'array', maxItems: 32, items: condition }
})

/* ------------------------------------------------------------------ routes ------------------------------------------------------------------ */

const match: Schema = object({
  path: {
    type: 'string',
    pattern: '^/[^?#\\s]*$',
    'x-message': { pattern: 'must start with "/" and hold no query, fragment or spaces' }
  },
  prefix: { type: 'boolean', default: false },
  methods: { type: 'array', minItems: 1, uniqueItems: true, items: method },
  // A host name or `*.` and one (docs/policy.md, "Hosts"); `compile.ts` checks its shape.
  host: { type: 'string', minLength: 1, maxLength: 253 }
}, { required: ['path'] })

const forward: Schema = object({
  authorization: { type: 'string', enum: ['keep', 'strip', 'reissue'], default: 'keep' },
  audience: nonEmptyString,
  claims: mapOf(claimPath, { propertyNames: headerName }),
  stripHeaders: { type: 'array', items: headerName, default: [] }
}, { default: {} })

/** WebSocket upgrades on a route (docs/proxying.md, "WebSockets and Upgrade"): refused unless enabled. */
const websocket: Schema = object({
  enabled: { type: 'boolean', default: false },
  subprotocolToken: { type: 'boolean', default: false },
  closeOnExpiry: { type: 'boolean', default: true },
  closeOnReload: { type: 'boolean', default: true }
}, { default: {} })

/**
 * What a forward-auth allow on this route tells an ingress's decision cache (docs/forward-auth.md,
 * "Caching decisions"). `cacheHints: false`: every answer is `no-store`, so each request is asked, and a
 * revocation (a config reload, a key removed) shows on the next request rather than within `s-maxage`.
 * `denialCache`: how long a denial that depends only on the cache key may be kept.
 */
const forwardAuth: Schema = object({
  cacheHints: { type: 'boolean', default: true },
  // How long a denial that depends on the cache key alone may be kept (`0s`: never); at most 60s.
  denialCache: withDefault(duration, '5s')
})

/** A route's rate limit (docs/rate-limits.md): `limit` requests per `window`, a bucket per key. */
const rateLimit: Schema = object({
  limit: { type: 'integer', minimum: 1 },
  window: duration,
  key: {
    type: 'array',
    minItems: 1,
    uniqueItems: true,
    items: { type: 'string', enum: ['client', 'subject', 'route', 'address'] },
    default: ['route', 'client', 'subject']
  },
  store: { type: 'string', enum: ['memory', 'redis'], default: 'memory' },
  onStoreError: { type: 'string', enum: ['open', 'closed'], default: 'open' }
}, { required: ['limit', 'window'] })

/** A route's CORS (docs/cors.md): origins exact, `*`, or `scheme://*.domain[:port]`. */
const cors: Schema = object({
  origins: {
    type: 'array',
    minItems: 1,
    items: {
      type: 'string',
      pattern: '^(?:\\*|https?://(?:\\*\\.)?[A-Za-z0-9.-]+(?::[0-9]+)?)$',
      'x-message': { pattern: 'must be "*", an origin such as https://app.example.com, or a pattern such as https://*.example.com' }
    }
  },
  methods: { type: 'array', minItems: 1, uniqueItems: true, items: method },
  headers: { type: 'array', items: headerName, default: ['authorization', 'content-type'] },
  exposeHeaders: { type: 'array', items: headerName, default: [] },
  credentials: { type: 'boolean', default: false },
  maxAge: withDefault(duration, '10m')
}, { required: ['origins'] })

const route: Schema = object({
  id: idName,
  match,
  upstream: nonEmptyString,
  stripPrefix: { type: 'boolean', default: false },
  auth: { type: 'string', enum: ['required', 'optional', 'none'], default: 'required' },
  mode: { type: 'string', enum: ['enforce', 'audit'], default: 'enforce' },
  policy: withDefault(policy, {}),
  forward,
  websocket,
  rateLimit,
  cors,
  forwardAuth,
  // Every token on this route must come with a DPoP proof (docs/dpop.md).
  requireDpop: { type: 'boolean', default: false },
  // Every token on this route must be bound to the client certificate (docs/tls.md#certificate-bound-tokens-rfc-8705).
  requireCertificateBinding: { type: 'boolean', default: false }
}, { required: ['id', 'match', 'upstream'] })

/* ------------------------------------------------------------------ dpop, redis ------------------------------------------------------------------ */

/** DPoP proofs (RFC 9449), docs/dpop.md: which algorithms, how old a proof may be, where seen `jti`s are kept. */
const dpop: Schema = object({
  algorithms: { type: 'array', minItems: 1, uniqueItems: true, items: algorithm, default: ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'] },
  proofLifetime: withDefault(duration, '60s'),
  clockSkew: withDefault(duration, '5s'),
  replay: object({
    store: { type: 'string', enum: ['memory', 'redis'], default: 'memory' },
    maxEntries: { type: 'integer', minimum: 1, default: 100000 },
    onStoreFailure: { type: 'string', enum: ['deny', 'allow'], default: 'deny' }
  }, { default: {} }),
  nonce: object({
    enabled: { type: 'boolean', default: false },
    secret: { type: 'string', minLength: 32 },
    window: withDefault(duration, '5m')
  }, { default: {} })
}, { default: {} })

/** State shared between replicas (DPoP replay, rate limits): one Redis. */
const redis: Schema = object({
  url: { type: 'string', pattern: '^rediss?://\\S+$', 'x-message': { pattern: 'must be a redis:// or rediss:// URL' } },
  keyPrefix: withDefault(nonEmptyString, 'scopegate:'),
  timeout: withDefault(duration, '500ms')
}, { required: ['url'] })

/* ------------------------------------------------------------------ telemetry ------------------------------------------------------------------ */

/** The sampler names of `OTEL_TRACES_SAMPLER` that scopegate supports (docs/observability.md#sampling). */
export const TRACE_SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const

/**
 * OpenTelemetry tracing (docs/observability.md#tracing). No defaults for the exporter's keys: a key left out
 * is taken from its `OTEL_*` environment variable, so the schema must not fill it in.
 */
const telemetry: Schema = object({
  tracing: object({
    enabled: { type: 'boolean', default: false },
    endpoint: { type: 'string', pattern: '^https?://\\S+$', 'x-message': { pattern: 'must be an http:// or https:// URL' } },
    sampler: { type: 'string', enum: TRACE_SAMPLERS },
    ratio: { type: 'number', minimum: 0, maximum: 1 },
    serviceName: nonEmptyString
  }, { default: {} }),
  propagation: object({
    trust: { type: 'string', enum: ['trusted', 'always', 'never'], default: 'trusted' }
  }, { default: {} })
}, { default: {} })

/* ------------------------------------------------------------------ the whole file ------------------------------------------------------------------ */

export const configSchema: Schema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://scopegate.dev/schemas/config.json',
  title: 'scopegate config',
  ...object({
    server,
    issuers: { type: 'array', items: issuer, default: [] },
    upstreams: mapOf(upstream, { minProperties: 1, propertyNames: idName }),
    reissue,
    defaults: object({ policy: withDefault(policy, {}) }, { default: {} }),
    routes: { type: 'array', minItems: 1, items: route },
    dpop,
    redis,
    telemetry
  }, { required: ['upstreams', 'routes'] })
}

/** The Ajv instance the validator is compiled with; exported so tests can compile fragments alike. */
export const ajv = new Ajv({
  allErrors: true,
  useDefaults: true,
  strict: true,
  allowUnionTypes: true,
  coerceTypes: false,
  // errors carry the value and the schema object, so `schema-problems.ts` can word them and read `x-message`
  verbose: true
})
ajv.addKeyword({ keyword: 'x-message', schemaType: 'object' })

/**
 * Validates a parsed, interpolated config in place, filling in every default. On success the value is a
 * `RawConfig` except that `claims.scope` and `claims.clientId` may still be bare strings (see `parse.ts`).
 * Errors are Ajv's; `schema-problems.ts` turns them into problems.
 */
export const validateConfig: ValidateFunction = ajv.compile(configSchema)
