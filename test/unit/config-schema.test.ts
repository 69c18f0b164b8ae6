/**
 * Pins the JSON Schema (`src/config/schema.ts`) to the `RawConfig` type (`src/config/types.ts`):
 * a change to one that is not made to the other breaks either this file's compilation or its tests.
 */
import t from 'tap'
import { configSchema, JWS_ALGORITHMS, LOG_LEVELS, REISSUE_ALGORITHMS, validateConfig } from '../../src/config/schema.js'
import type { RawClientCertificateHeader, RawExtAuthzListener, RawCondition, RawConfig, RawCors, RawForward, RawForwardAuth, RawForwarding, RawIntrospection, RawIssuer, RawJwksOptions, RawListener, RawAdminListener, RawStatusPage, RawListenerTls, RawPolicy, RawProxyListener, RawRateLimit, RawDpop, RawRedis, RawReissue, RawTelemetry, RawRoute, RawServer, RawUpstream, RawUpstreamTls, RawWebsocket } from '../../src/config/types.js'

const fullPolicy: Required<{ [K in keyof RawPolicy]: Required<NonNullable<RawPolicy[K]>> }> = {
  issuers: ['primary', 'secondary'],
  network: { allow: ['10.0.0.0/8'], deny: ['10.6.6.0/24'] },
  audience: { allow: ['https://todo.api'], deny: ['http://todoapi2.api'], denyMissing: true },
  clients: { allow: ['todo-web'], deny: ['CLIENT_ID'], denyMissing: false },
  grants: { roles: { admin: ['*'], user: ['read:todos'] }, clients: { 'todo-cli': ['read:todos'] } },
  scopes: { require: ['read:todos'], match: 'any' },
  denyStatus: { policy: 403, scope: 401 },
  roles: { require: ['ops'], match: 'any' },
  conditions: [{ claim: 'tenant', in: ['acme', 'globex'] }, { cel: 'claims.email_verified == true' }]
}

/** A config with every optional field set, each to a value other than its default. */
const everyField: RawConfig = {
  server: {
    proxy: { host: '127.0.0.1', port: 0, http2: true, tls: { cert: 'tls/proxy.crt', key: 'tls/proxy.key', clientCa: 'tls/ca.crt', clientCertificate: 'require', minVersion: 'TLSv1.3' } },
    admin: { host: '::1', port: 19090, tls: { cert: 'tls/admin.crt', key: 'tls/admin.key', clientCertificate: 'none', minVersion: 'TLSv1.2' }, status: { enabled: true, token: 'a-status-token-of-some-length', recentDenials: 20, maxConnections: 3 } },
    trustProxy: ['10.0.0.0/8', '192.168.0.1'],
    workers: 'auto',
    requestTimeout: '15s',
    shutdownTimeout: '2500ms',
    maxHeaderSize: 32768,
    logLevel: 'debug',
    forwarded: { xForwardedFor: 'replace', xForwardedProto: false, xForwardedHost: false, xForwardedPort: false, forwarded: true, clientIpHeaders: ['X-Real-IP'] },
    extAuthz: { host: '127.0.0.1', port: 19191, tls: { cert: 'tls/ext-authz.crt', key: 'tls/ext-authz.key', clientCa: 'tls/mesh-ca.crt', clientCertificate: 'require', minVersion: 'TLSv1.3' } },
    clientCertificateHeader: { name: 'X-SSL-Client-Cert', format: 'xfcc' }
  },
  issuers: [
    {
      id: 'primary',
      issuer: 'https://tenant.example.com/',
      discovery: false,
      jwksUri: 'https://tenant.example.com/.well-known/jwks.json',
      algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'],
      audiences: ['https://todo.api', 'https://other.api'],
      clockTolerance: '1.5s',
      requireTyp: true,
      requireDpop: true,
      requireCertificateBinding: true,
      claims: {
        scope: ['scp', ['realm_access', 'scope']],
        roles: ['realm_access', 'roles'],
        clientId: ['azp'],
        subject: ['ext', 'uid']
      },
      jwks: { refreshInterval: '1h', cooldown: '1m', timeout: '2s', maxStale: '1d', maxBytes: 65536 }
    },
    {
      id: 'secondary',
      issuer: 'https://idp.example.org',
      discovery: true,
      algorithms: ['ES384'],
      audiences: ['api'],
      clockTolerance: '0s',
      requireTyp: false,
      requireDpop: false,
      requireCertificateBinding: false,
      claims: { scope: ['scope'], roles: 'https://example.com/roles', clientId: ['client_id'], subject: 'sub' },
      jwks: { refreshInterval: '10m', cooldown: '30s', timeout: '5s', maxStale: '24h', maxBytes: 1048576 }
    }
  ],
  upstreams: {
    todo: { url: 'http://todo-api:3000', timeout: '45s', preserveHost: true, http2: true },
    'billing.v2': {
      url: 'https://billing.internal/api/v2',
      timeout: '30s',
      preserveHost: false,
      http2: false,
      tls: { ca: 'ca.pem', servername: 'billing.internal', cert: 'client.pem', key: 'client.key', insecureSkipVerify: false }
    }
  },
  reissue: {
    issuer: 'https://scopegate.internal',
    ttl: '2m',
    algorithm: 'EdDSA',
    keys: [{ file: '/etc/scopegate/keys/current.jwk.json' }, { file: '/etc/scopegate/keys/previous.pem' }]
  },
  defaults: { policy: fullPolicy },
  routes: [
    {
      id: 'todos-read',
      match: { path: '/todos', prefix: true, methods: ['GET', 'HEAD'], host: '*.example.com' },
      upstream: 'todo',
      stripPrefix: true,
      auth: 'optional',
      mode: 'audit',
      policy: fullPolicy,
      forward: {
        authorization: 'reissue',
        audience: 'https://todo.internal',
        claims: { 'x-tenant-id': 'tenant', 'X-Org': ['org', 'id'] },
        stripHeaders: ['X-Debug-User']
      },
      websocket: { enabled: true, subprotocolToken: true, closeOnExpiry: false, closeOnReload: false },
      rateLimit: { limit: 50, window: '10s', key: ['address', 'client'], store: 'redis', onStoreError: 'closed' },
      cors: { origins: ['https://app.example.com', 'https://*.example.org'], methods: ['GET', 'PUT'], headers: ['Authorization', 'X-Request-Id'], exposeHeaders: ['X-Total'], credentials: true, maxAge: '1h' },
      requireDpop: true,
      requireCertificateBinding: true
    }
  ],
  dpop: {
    algorithms: ['ES256', 'EdDSA'],
    proofLifetime: '30s',
    clockSkew: '2s',
    replay: { store: 'redis', maxEntries: 5000, onStoreFailure: 'allow' },
    nonce: { enabled: true, secret: 'a-nonce-secret-of-at-least-32-characters', window: '1m' }
  },
  redis: { url: 'rediss://redis.internal:6380/1', keyPrefix: 'gw:', timeout: '250ms' },
  telemetry: {
    tracing: { enabled: true, endpoint: 'http://otel-collector:4318', sampler: 'parentbased_traceidratio', ratio: 0.25, serviceName: 'edge-gateway' },
    propagation: { trust: 'always' }
  }
}

t.test('a config with every field set is accepted unchanged', async (t) => {
  const copy = structuredClone(everyField)
  t.ok(validateConfig(copy), JSON.stringify(validateConfig.errors))
  t.strictSame(copy, everyField)
})

/* ------------------------------------------------------------------ keys ------------------------------------------------------------------ */

/**
 * For each key of T: 'optional' where the type says `?`, else 'required' or 'default' (the schema
 * requires it, or fills it in). An object literal of this type must name exactly T's keys.
 */
type Presence<T> = { [K in keyof T]-?: {} extends Pick<T, K> ? 'optional' : 'required' | 'default' }

type Schema = Record<string, unknown>

/** The sub-schema at a path of property names; '[]' steps into list items, '{}' into map values. */
function schemaAt (...path: string[]): Schema {
  let node: Schema = configSchema
  for (const step of path) {
    const next = step === '[]' ? node.items : step === '{}' ? node.additionalProperties : (node.properties as Record<string, unknown>)[step]
    if (typeof next !== 'object' || next === null) throw new Error(`no schema at ${path.join('.')}`)
    node = next as Schema
  }
  return node
}

function presenceInSchema (schema: Schema): Record<string, string> {
  const required = (schema.required ?? []) as string[]
  const properties = schema.properties as Record<string, Schema>
  return Object.fromEntries(Object.entries(properties).map(([key, property]) =>
    [key, required.includes(key) ? 'required' : 'default' in property ? 'default' : 'optional']))
}

const sorted = (record: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)))

const listener: Presence<RawListener> = { host: 'default', port: 'default', tls: 'optional' }
const proxyListener: Presence<RawProxyListener> = { ...listener, http2: 'default' }
const listenerTls: Presence<RawListenerTls> = { cert: 'required', key: 'required', clientCa: 'optional', clientCertificate: 'default', minVersion: 'default' }
const policyKeys: Presence<RawPolicy> = {
  issuers: 'optional',
  network: 'optional',
  audience: 'optional',
  clients: 'optional',
  grants: 'optional',
  scopes: 'optional',
  denyStatus: 'optional',
  roles: 'optional',
  conditions: 'optional'
}
const allowDenyMissing: Presence<NonNullable<RawPolicy['audience']>> = { allow: 'optional', deny: 'optional', denyMissing: 'optional' }

const objects: Array<[string, string[], Record<string, string>]> = [
  ['RawConfig', [], {
    server: 'default', issuers: 'default', upstreams: 'required', reissue: 'optional', defaults: 'default', routes: 'required', dpop: 'default', redis: 'optional', telemetry: 'default'
  } satisfies Presence<RawConfig>],
  ['RawTelemetry', ['telemetry'], { tracing: 'default', propagation: 'default' } satisfies Presence<RawTelemetry>],
  ['RawTelemetry.tracing', ['telemetry', 'tracing'], {
    enabled: 'default', endpoint: 'optional', sampler: 'optional', ratio: 'optional', serviceName: 'optional'
  } satisfies Presence<RawTelemetry['tracing']>],
  ['RawTelemetry.propagation', ['telemetry', 'propagation'], { trust: 'default' } satisfies Presence<RawTelemetry['propagation']>],
  ['RawDpop', ['dpop'], {
    algorithms: 'default', proofLifetime: 'default', clockSkew: 'default', replay: 'default', nonce: 'default'
  } satisfies Presence<RawDpop>],
  ['RawDpop.replay', ['dpop', 'replay'], { store: 'default', maxEntries: 'default', onStoreFailure: 'default' } satisfies Presence<RawDpop['replay']>],
  ['RawDpop.nonce', ['dpop', 'nonce'], { enabled: 'default', secret: 'optional', window: 'default' } satisfies Presence<RawDpop['nonce']>],
  ['RawRedis', ['redis'], { url: 'required', keyPrefix: 'default', timeout: 'default' } satisfies Presence<RawRedis>],
  ['RawRateLimit', ['routes', '[]', 'rateLimit'], {
    limit: 'required', window: 'required', key: 'default', store: 'default', onStoreError: 'default'
  } satisfies Presence<RawRateLimit>],
  ['RawServer', ['server'], {
    proxy: 'default',
    admin: 'default',
    trustProxy: 'default',
    workers: 'default',
    requestTimeout: 'default',
    shutdownTimeout: 'default',
    maxHeaderSize: 'default',
    logLevel: 'default',
    forwarded: 'default',
    extAuthz: 'optional',
    clientCertificateHeader: 'optional'
  } satisfies Presence<RawServer>],
  ['RawExtAuthzListener', ['server', 'extAuthz'], { host: 'default', port: 'default', tls: 'optional' } satisfies Presence<RawExtAuthzListener>],
  ['RawClientCertificateHeader', ['server', 'clientCertificateHeader'], { name: 'required', format: 'default' } satisfies Presence<RawClientCertificateHeader>],
  ['RawForwarding', ['server', 'forwarded'], {
    xForwardedFor: 'default',
    xForwardedProto: 'default',
    xForwardedHost: 'default',
    xForwardedPort: 'default',
    forwarded: 'default',
    clientIpHeaders: 'default'
  } satisfies Presence<RawForwarding>],
  ['RawListener (proxy)', ['server', 'proxy'], proxyListener],
  ['RawAdminListener', ['server', 'admin'], { ...listener, status: 'default' } satisfies Presence<RawAdminListener>],
  ['RawStatusPage', ['server', 'admin', 'status'], {
    enabled: 'default', token: 'optional', recentDenials: 'default', maxConnections: 'default'
  } satisfies Presence<RawStatusPage>],
  ['RawListenerTls (proxy)', ['server', 'proxy', 'tls'], listenerTls],
  ['RawListenerTls (admin)', ['server', 'admin', 'tls'], listenerTls],
  ['RawListenerTls (extAuthz)', ['server', 'extAuthz', 'tls'], listenerTls],
  ['RawIssuer', ['issuers', '[]'], {
    id: 'required',
    issuer: 'required',
    discovery: 'optional',
    jwksUri: 'optional',
    algorithms: 'required',
    audiences: 'required',
    clockTolerance: 'default',
    requireTyp: 'default',
    requireDpop: 'default',
    requireCertificateBinding: 'default',
    claims: 'default',
    jwks: 'default',
    introspection: 'optional'
  } satisfies Presence<RawIssuer>],
  ['RawIntrospection', ['issuers', '[]', 'introspection'], {
    endpoint: 'optional',
    clientId: 'required',
    clientSecret: 'optional',
    clientSecretFile: 'optional',
    privateKeyFile: 'optional',
    authMethod: 'default',
    opaqueTokens: 'default',
    jwtTokens: 'default',
    rolesClaim: 'optional',
    jwtResponse: 'default',
    cacheTtl: 'default',
    refusalTtl: 'default',
    timeout: 'default',
    retryAfter: 'default',
    maxBytes: 'default',
    cooldown: 'default'
  } satisfies Presence<RawIntrospection>],
  ['RawIssuer.claims', ['issuers', '[]', 'claims'], {
    scope: 'default', roles: 'default', clientId: 'default', subject: 'default'
  } satisfies Presence<RawIssuer['claims']>],
  ['RawJwksOptions', ['issuers', '[]', 'jwks'], {
    refreshInterval: 'default', cooldown: 'default', timeout: 'default', maxStale: 'default', maxBytes: 'default'
  } satisfies Presence<RawJwksOptions>],
  ['RawUpstream', ['upstreams', '{}'], {
    url: 'required', timeout: 'default', preserveHost: 'default', tls: 'optional', http2: 'default'
  } satisfies Presence<RawUpstream>],
  ['RawUpstreamTls', ['upstreams', '{}', 'tls'], {
    ca: 'optional', servername: 'optional', cert: 'optional', key: 'optional', insecureSkipVerify: 'default'
  } satisfies Presence<RawUpstreamTls>],
  ['RawReissue', ['reissue'], {
    issuer: 'required', ttl: 'default', algorithm: 'default', jwksUri: 'optional', keys: 'optional'
  } satisfies Presence<RawReissue>],
  ['RawReissue.keys[]', ['reissue', 'keys', '[]'], { file: 'required' } satisfies Presence<NonNullable<RawReissue['keys']>[number]>],
  ['RawConfig.defaults', ['defaults'], { policy: 'default' } satisfies Presence<RawConfig['defaults']>],
  ['RawPolicy (defaults)', ['defaults', 'policy'], policyKeys],
  ['RawPolicy (route)', ['routes', '[]', 'policy'], policyKeys],
  ['RawPolicy.network', ['routes', '[]', 'policy', 'network'], {
    allow: 'optional', deny: 'optional'
  } satisfies Presence<NonNullable<RawPolicy['network']>>],
  ['RawPolicy.audience', ['routes', '[]', 'policy', 'audience'], allowDenyMissing],
  ['RawPolicy.clients', ['routes', '[]', 'policy', 'clients'], allowDenyMissing satisfies Presence<NonNullable<RawPolicy['clients']>>],
  ['RawPolicy.grants', ['routes', '[]', 'policy', 'grants'], {
    roles: 'optional', clients: 'optional'
  } satisfies Presence<NonNullable<RawPolicy['grants']>>],
  ['RawPolicy.scopes', ['routes', '[]', 'policy', 'scopes'], {
    require: 'optional', match: 'optional'
  } satisfies Presence<NonNullable<RawPolicy['scopes']>>],
  ['RawPolicy.denyStatus', ['routes', '[]', 'policy', 'denyStatus'], {
    policy: 'optional', scope: 'optional'
  } satisfies Presence<NonNullable<RawPolicy['denyStatus']>>],
  ['RawPolicy.roles', ['routes', '[]', 'policy', 'roles'], {
    require: 'optional', match: 'optional'
  } satisfies Presence<NonNullable<RawPolicy['roles']>>],
  ['RawCondition', ['routes', '[]', 'policy', 'conditions', '[]'], {
    claim: 'optional',
    equals: 'optional',
    in: 'optional',
    contains: 'optional',
    atLeast: 'optional',
    levels: 'optional',
    maxAge: 'optional',
    exists: 'optional',
    cel: 'optional'
  } satisfies Presence<RawCondition>],
  ['RawRoute', ['routes', '[]'], {
    id: 'required',
    match: 'required',
    upstream: 'required',
    stripPrefix: 'default',
    auth: 'default',
    mode: 'default',
    policy: 'default',
    forward: 'default',
    websocket: 'default',
    rateLimit: 'optional',
    cors: 'optional',
    forwardAuth: 'optional',
    requireDpop: 'default',
    requireCertificateBinding: 'default'
  } satisfies Presence<RawRoute>],
  ['RawForwardAuth', ['routes', '[]', 'forwardAuth'], { cacheHints: 'default', denialCache: 'default' } satisfies Presence<RawForwardAuth>],
  ['RawCors', ['routes', '[]', 'cors'], {
    origins: 'required', methods: 'optional', headers: 'default', exposeHeaders: 'default', credentials: 'default', maxAge: 'default'
  } satisfies Presence<RawCors>],
  ['RawRoute.match', ['routes', '[]', 'match'], {
    path: 'required', prefix: 'default', methods: 'optional', host: 'optional'
  } satisfies Presence<RawRoute['match']>],
  ['RawForward', ['routes', '[]', 'forward'], {
    authorization: 'default', audience: 'optional', claims: 'optional', stripHeaders: 'default'
  } satisfies Presence<RawForward>],
  ['RawWebsocket', ['routes', '[]', 'websocket'], {
    enabled: 'default', subprotocolToken: 'default', closeOnExpiry: 'default', closeOnReload: 'default'
  } satisfies Presence<RawWebsocket>]
]

for (const [name, path, keys] of objects) {
  t.test(`the schema of ${name} has the type's keys, required or defaulted as the type needs`, async (t) => {
    const schema = schemaAt(...path)
    t.equal(schema.additionalProperties, false, 'unknown keys are refused')
    t.strictSame(sorted(presenceInSchema(schema)), sorted(keys))
  })
}

/* ------------------------------------------------------------------ enums ------------------------------------------------------------------ */

/** The members of a string union, from an object that must name each exactly once. */
const membersOf = <T extends string | number>(table: Record<T, true>): string[] => Object.keys(table).sort()

const enums: Array<[string, string[], string[]]> = [
  ['server.logLevel', ['server', 'logLevel'], membersOf<RawServer['logLevel']>({ fatal: true, error: true, warn: true, info: true, debug: true, trace: true, silent: true })],
  ['reissue.algorithm', ['reissue', 'algorithm'], membersOf<RawReissue['algorithm']>({ ES256: true, EdDSA: true, RS256: true, PS256: true })],
  ['route auth', ['routes', '[]', 'auth'], membersOf<RawRoute['auth']>({ required: true, optional: true, none: true })],
  ['dpop.replay.store', ['dpop', 'replay', 'store'], membersOf<RawDpop['replay']['store']>({ memory: true, redis: true })],
  ['telemetry.tracing.sampler', ['telemetry', 'tracing', 'sampler'], membersOf<NonNullable<RawTelemetry['tracing']['sampler']>>({
    always_on: true, always_off: true, traceidratio: true, parentbased_always_on: true, parentbased_always_off: true, parentbased_traceidratio: true
  })],
  ['telemetry.propagation.trust', ['telemetry', 'propagation', 'trust'], membersOf<RawTelemetry['propagation']['trust']>({ trusted: true, always: true, never: true })],
  ['dpop.replay.onStoreFailure', ['dpop', 'replay', 'onStoreFailure'], membersOf<RawDpop['replay']['onStoreFailure']>({ deny: true, allow: true })],
  ['route mode', ['routes', '[]', 'mode'], membersOf<RawRoute['mode']>({ enforce: true, audit: true })],
  ['server.proxy.tls.clientCertificate', ['server', 'proxy', 'tls', 'clientCertificate'], membersOf<RawListenerTls['clientCertificate']>({ none: true, request: true, require: true })],
  ['server.proxy.tls.minVersion', ['server', 'proxy', 'tls', 'minVersion'], membersOf<RawListenerTls['minVersion']>({ 'TLSv1.2': true, 'TLSv1.3': true })],
  ['server.forwarded.xForwardedFor', ['server', 'forwarded', 'xForwardedFor'], membersOf<RawForwarding['xForwardedFor']>({ append: true, replace: true, remove: true })],
  ['forward.authorization', ['routes', '[]', 'forward', 'authorization'], membersOf<RawForward['authorization']>({ keep: true, strip: true, reissue: true })],
  ['scopes.match', ['routes', '[]', 'policy', 'scopes', 'match'], membersOf<NonNullable<NonNullable<RawPolicy['scopes']>['match']>>({ all: true, any: true })],
  ['roles.match', ['routes', '[]', 'policy', 'roles', 'match'], membersOf<NonNullable<NonNullable<RawPolicy['roles']>['match']>>({ all: true, any: true })],
  ['denyStatus.policy', ['routes', '[]', 'policy', 'denyStatus', 'policy'], membersOf<NonNullable<NonNullable<RawPolicy['denyStatus']>['policy']>>({ 401: true, 403: true })]
]

for (const [name, path, members] of enums) {
  t.test(`the schema's values for ${name} are the type's`, async (t) => {
    t.strictSame((schemaAt(...path).enum as unknown[]).map(String).sort(), members)
  })
}

t.test('the exported enum constants are the schema\'s', async (t) => {
  t.strictSame(schemaAt('server', 'logLevel').enum, LOG_LEVELS)
  t.strictSame(schemaAt('reissue', 'algorithm').enum, REISSUE_ALGORITHMS)
  t.strictSame(schemaAt('issuers', '[]', 'algorithms', '[]').enum, JWS_ALGORITHMS)
})
