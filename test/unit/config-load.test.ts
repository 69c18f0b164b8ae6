import t from 'tap'
import { join } from 'node:path'
import { parseConfigText, readConfigFile } from '../../src/config/parse.js'
import { ConfigError, formatProblems } from '../../src/config/problems.js'
import type { RawConfig, RawIssuer, RawRoute } from '../../src/config/types.js'

/** A whole config in the shape of docs/config.md's example. */
const CONTRACT_YAML = `
server:
  proxy: { host: 0.0.0.0, port: 8080 }
  admin: { host: 0.0.0.0, port: 9090 }
  trustProxy: false
  workers: 1
  requestTimeout: 30s

issuers:
  - id: auth0
    issuer: https://tenant.example.com/
    discovery: true
    algorithms: [RS256]
    audiences: [https://todo.api]
    clockTolerance: 30s
    requireTyp: false
    claims:
      scope: [scope, scp, permissions]
      roles: https://example.com/roles
      clientId: [client_id, azp]
      subject: sub
    jwks:
      refreshInterval: 10m
      cooldown: 30s
      timeout: 5s
      maxStale: 24h
      maxBytes: 1048576

upstreams:
  todo: { url: http://todo-api:3000, timeout: 30s }

reissue:
  issuer: https://scopegate.internal
  ttl: 60s
  algorithm: ES256
  keys:
    - file: /etc/scopegate/keys/current.jwk.json

defaults:
  policy:
    audience: { denyMissing: true }

routes:
  - id: todos-read
    match: { path: /todos, prefix: true, methods: [GET, HEAD] }
    upstream: todo
    stripPrefix: false
    auth: required
    mode: enforce
    policy:
      issuers: [auth0]
      network: { allow: [10.0.0.0/8], deny: [] }
      audience: { allow: [https://todo.api], deny: [http://todoapi2.api], denyMissing: true }
      clients:  { allow: [], deny: [CLIENT_ID] }
      grants:
        roles:   { admin: ["*"], editor: [read:todos, write:todos], user: [read:todos] }
        clients: { todo-cli: [read:todos] }
      scopes: { require: [read:todos], match: all }
      denyStatus: { policy: 401, scope: 403 }
    forward:
      authorization: keep
      audience: https://todo.internal
      claims: { x-tenant-id: tenant }
`

const DEFAULT_SERVER: RawConfig['server'] = {
  proxy: { host: '0.0.0.0', port: 8080, http2: false },
  admin: { host: '0.0.0.0', port: 9090, status: { enabled: false, recentDenials: 50, maxConnections: 10 } },
  trustProxy: false,
  workers: 1,
  requestTimeout: '30s',
  shutdownTimeout: '10s',
  maxHeaderSize: 16384,
  logLevel: 'info',
  forwarded: { xForwardedFor: 'append', xForwardedProto: true, xForwardedHost: true, xForwardedPort: true, forwarded: false, clientIpHeaders: [] }
}

const DEFAULT_ISSUER_PARTS: Pick<RawIssuer, 'clockTolerance' | 'requireTyp' | 'requireDpop' | 'requireCertificateBinding' | 'claims' | 'jwks'> = {
  clockTolerance: '30s',
  requireTyp: false,
  requireDpop: false,
  requireCertificateBinding: false,
  claims: { scope: ['scope', 'scp', 'permissions'], roles: 'roles', clientId: ['client_id', 'azp'], subject: 'sub' },
  jwks: { refreshInterval: '10m', cooldown: '30s', timeout: '5s', maxStale: '24h', maxBytes: 1048576 }
}

const DEFAULT_ROUTE_PARTS: Pick<RawRoute, 'stripPrefix' | 'auth' | 'mode' | 'policy' | 'forward' | 'websocket' | 'requireDpop' | 'requireCertificateBinding'> = {
  requireDpop: false,
  requireCertificateBinding: false,
  stripPrefix: false,
  auth: 'required',
  mode: 'enforce',
  policy: {},
  forward: { authorization: 'keep', stripHeaders: [] },
  websocket: { enabled: false, subprotocolToken: false, closeOnExpiry: true, closeOnReload: true }
}

const DEFAULT_TELEMETRY: RawConfig['telemetry'] = { tracing: { enabled: false }, propagation: { trust: 'trusted' } }
const DEFAULT_DPOP: RawConfig['dpop'] = {
  algorithms: ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'],
  proofLifetime: '60s',
  clockSkew: '5s',
  replay: { store: 'memory', maxEntries: 100000, onStoreFailure: 'deny' },
  nonce: { enabled: false, window: '5m' }
}

/** The smallest valid config, as plain values: tests change one thing in a copy. */
function minimal (): Record<string, any> {
  return {
    upstreams: { todo: { url: 'http://todo:3000' } },
    routes: [{ id: 'r0', match: { path: '/todos' }, upstream: 'todo' }]
  }
}

function withIssuer (issuer: Record<string, unknown>): Record<string, any> {
  return { ...minimal(), issuers: [{ id: 'idp', issuer: 'https://idp/', discovery: true, algorithms: ['RS256'], audiences: ['api'], ...issuer }] }
}

/** The problems, one line each, that loading `config` (as JSON) reports; [] if it loads. */
function problemsOf (config: unknown, env: Record<string, string> = {}): string[] {
  try {
    parseConfigText(JSON.stringify(config), 'test.json', env)
    return []
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return formatProblems(err).split('\n')
  }
}

function problemsOfText (text: string, source: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfigText(text, source, env)
    return []
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return formatProblems(err).split('\n')
  }
}

t.test('the contract example loads as written, with the unset defaults filled in', async (t) => {
  const config = parseConfigText(CONTRACT_YAML, 'scopegate.yaml', {})
  t.strictSame(config, {
    server: DEFAULT_SERVER,
    issuers: [{
      id: 'auth0',
      issuer: 'https://tenant.example.com/',
      discovery: true,
      algorithms: ['RS256'],
      audiences: ['https://todo.api'],
      ...DEFAULT_ISSUER_PARTS,
      claims: { ...DEFAULT_ISSUER_PARTS.claims, roles: 'https://example.com/roles' }
    }],
    upstreams: { todo: { url: 'http://todo-api:3000', timeout: '30s', preserveHost: false, http2: false } },
    reissue: { issuer: 'https://scopegate.internal', ttl: '60s', algorithm: 'ES256', keys: [{ file: '/etc/scopegate/keys/current.jwk.json' }] },
    defaults: { policy: { audience: { denyMissing: true } } },
    routes: [{
      id: 'todos-read',
      match: { path: '/todos', prefix: true, methods: ['GET', 'HEAD'] },
      upstream: 'todo',
      stripPrefix: false,
      auth: 'required',
      mode: 'enforce',
      policy: {
        issuers: ['auth0'],
        network: { allow: ['10.0.0.0/8'], deny: [] },
        audience: { allow: ['https://todo.api'], deny: ['http://todoapi2.api'], denyMissing: true },
        clients: { allow: [], deny: ['CLIENT_ID'] },
        grants: {
          roles: { admin: ['*'], editor: ['read:todos', 'write:todos'], user: ['read:todos'] },
          clients: { 'todo-cli': ['read:todos'] }
        },
        scopes: { require: ['read:todos'], match: 'all' },
        denyStatus: { policy: 401, scope: 403 }
      },
      forward: { authorization: 'keep', audience: 'https://todo.internal', claims: { 'x-tenant-id': 'tenant' }, stripHeaders: [] },
      websocket: { enabled: false, subprotocolToken: false, closeOnExpiry: true, closeOnReload: true },
      requireDpop: false,
      requireCertificateBinding: false
    }],
    dpop: DEFAULT_DPOP,
    telemetry: DEFAULT_TELEMETRY
  } satisfies RawConfig)
})

t.test('a minimal config gets every default', async (t) => {
  const config = parseConfigText(JSON.stringify(withIssuer({})), 'test.json', {})
  t.strictSame(config, {
    upstreams: { todo: { url: 'http://todo:3000', timeout: '30s', preserveHost: false, http2: false } },
    routes: [{ id: 'r0', match: { path: '/todos', prefix: false }, upstream: 'todo', ...DEFAULT_ROUTE_PARTS }],
    issuers: [{ id: 'idp', issuer: 'https://idp/', discovery: true, algorithms: ['RS256'], audiences: ['api'], ...DEFAULT_ISSUER_PARTS }],
    server: DEFAULT_SERVER,
    defaults: { policy: {} },
    dpop: DEFAULT_DPOP,
    telemetry: DEFAULT_TELEMETRY
  } satisfies RawConfig)
})

t.test('defaults fill each missing key of a partly written block', async (t) => {
  const config = parseConfigText(JSON.stringify({
    ...withIssuer({ claims: { roles: ['realm_access', 'roles'] }, jwks: { maxStale: '1h' } }),
    server: { proxy: { port: 8000 }, workers: 'auto' }
  }), 'test.json', {})
  t.strictSame(config.server.proxy, { host: '0.0.0.0', port: 8000, http2: false })
  t.equal(config.server.workers, 'auto')
  t.strictSame(config.server.admin, DEFAULT_SERVER.admin)
  t.strictSame(config.issuers[0]?.claims, { ...DEFAULT_ISSUER_PARTS.claims, roles: ['realm_access', 'roles'] })
  t.strictSame(config.issuers[0]?.jwks, { ...DEFAULT_ISSUER_PARTS.jwks, maxStale: '1h' })
})

t.test('a bare-string scope or clientId claim becomes a one-item list', async (t) => {
  const config = parseConfigText(JSON.stringify(withIssuer({ claims: { scope: 'scp', clientId: ['azp', ['app', 'id']] } })), 'test.json', {})
  t.strictSame(config.issuers[0]?.claims.scope, ['scp'])
  t.strictSame(config.issuers[0]?.claims.clientId, ['azp', ['app', 'id']])
})

t.test('a wrong value names its full path', async (t) => {
  const config = minimal()
  config.routes = [0, 1, 2].map((i) => ({ id: `r${i}`, match: { path: `/p${i}` }, upstream: 'todo' }))
  config.routes[2].policy = { audience: { deny: [42] } }
  t.strictSame(problemsOf(config), ['routes[2].policy.audience.deny[0]: must be a string'])
})

interface ProblemCase {
  name: string
  change: (config: Record<string, any>) => void
  problems: string[]
}

const problemCases: ProblemCase[] = [
  {
    name: 'an unknown key is named, with the key it probably meant',
    change: (c) => { c.routes[0].policy = { audiance: { deny: ['x'] } } },
    problems: ['routes[0].policy: unknown key "audiance" (did you mean "audience"?)']
  },
  {
    name: 'an unknown key unlike any known one is named alone',
    change: (c) => { c.colour = 'blue' },
    problems: ['unknown key "colour"']
  },
  {
    name: 'a missing required key is named by its own path',
    change: (c) => { delete c.routes[0].upstream },
    problems: ['routes[0].upstream: is required']
  },
  {
    name: 'a value outside an enum lists the allowed ones',
    change: (c) => { c.routes[0].forward = { authorization: 'pass' } },
    problems: ['routes[0].forward.authorization: must be one of: keep, strip, reissue']
  },
  {
    name: 'a number enum lists its values',
    change: (c) => { c.routes[0].policy = { denyStatus: { policy: 402 } } },
    problems: ['routes[0].policy.denyStatus.policy: must be one of: 401, 403']
  },
  {
    name: 'a bad duration says what a duration looks like',
    change: (c) => { c.upstreams.todo.timeout = '30 seconds' },
    problems: ['upstreams.todo.timeout: must be a duration such as 30s, 10m or 250ms']
  },
  {
    name: 'a duration written as a number is the wrong type',
    change: (c) => { c.server = { requestTimeout: 30 } },
    problems: ['server.requestTimeout: must be a string']
  },
  {
    name: 'a quoted port is not coerced',
    change: (c) => { c.server = { proxy: { port: '8080' } } },
    problems: ['server.proxy.port: must be an integer']
  },
  {
    name: 'a port out of range',
    change: (c) => { c.server = { admin: { port: 65536 } } },
    problems: ['server.admin.port: must be at most 65535']
  },
  {
    name: 'a union type names both',
    change: (c) => { c.server = { trustProxy: 'yes' } },
    problems: ['server.trustProxy: must be a boolean or a list']
  },
  {
    name: 'workers is a positive integer or auto',
    change: (c) => { c.server = { workers: 'many' } },
    problems: ['server.workers: must be a positive integer or "auto"']
  },
  {
    name: 'an HS algorithm is refused with its reason',
    change: (c) => { Object.assign(c, withIssuer({ algorithms: ['HS256'] })) },
    problems: ['issuers[0].algorithms[0]: "HS256" is refused: symmetric and none algorithms cannot be pinned']
  },
  {
    name: 'alg none is refused with its reason, next to a good algorithm',
    change: (c) => { Object.assign(c, withIssuer({ algorithms: ['RS256', 'none'] })) },
    problems: ['issuers[0].algorithms[1]: "none" is refused: symmetric and none algorithms cannot be pinned']
  },
  {
    name: 'an unknown algorithm lists the allowed ones',
    change: (c) => { Object.assign(c, withIssuer({ algorithms: ['RS257'] })) },
    problems: ['issuers[0].algorithms[0]: must be one of: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519']
  },
  {
    name: 'algorithms cannot be empty',
    change: (c) => { Object.assign(c, withIssuer({ algorithms: [] })) },
    problems: ['issuers[0].algorithms: must not be empty']
  },
  {
    name: 'an issuer needs jwksUri when discovery is not on',
    change: (c) => { Object.assign(c, withIssuer({ discovery: false })) },
    problems: ['issuers[0].jwksUri: is required unless discovery: true']
  },
  {
    name: 'an issuer cannot have both discovery and jwksUri',
    change: (c) => { Object.assign(c, withIssuer({ jwksUri: 'https://idp/jwks' })) },
    problems: ['issuers[0].jwksUri: must not be set when discovery is true']
  },
  {
    name: 'a route path must start with a slash',
    change: (c) => { c.routes[0].match.path = 'todos' },
    problems: ['routes[0].match.path: must start with "/" and hold no query, fragment or spaces']
  },
  {
    name: 'methods are upper-case and not repeated',
    change: (c) => { c.routes[0].match.methods = ['GET', 'post', 'GET'] },
    problems: [
      'routes[0].match.methods[1]: must be an upper-case HTTP method such as GET',
      'routes[0].match.methods: must not list "GET" twice'
    ]
  },
  {
    name: 'an id with spaces is refused',
    change: (c) => { c.routes[0].id = 'todos read' },
    problems: ['routes[0].id: must start with a letter or digit and contain only letters, digits, ".", "_" and "-"']
  },
  {
    name: 'a map key that is not a name is quoted in the path',
    change: (c) => { c.routes[0].policy = { grants: { roles: { 'https://x/roles': 'read' } } } },
    problems: ['routes[0].policy.grants.roles["https://x/roles"]: must be a list']
  },
  {
    name: 'an invalid header name in forward.claims is named',
    change: (c) => { c.routes[0].forward = { claims: { 'x tenant': 'tenant' } } },
    problems: ['routes[0].forward.claims: invalid key "x tenant": must be an HTTP header name']
  },
  {
    name: 'an upstream url must be http(s) with no query',
    change: (c) => { c.upstreams.todo.url = 'ftp://todo' },
    problems: ['upstreams.todo.url: must be an http:// or https:// URL without query or fragment']
  },
  {
    name: 'routes cannot be empty',
    change: (c) => { c.routes = [] },
    problems: ['routes: must not be empty']
  },
  {
    name: 'reissue needs its issuer and at least one key',
    change: (c) => { c.reissue = { keys: [] } },
    problems: ['reissue.issuer: is required', 'reissue.keys: must not be empty']
  },
  {
    name: 'several problems are reported at once',
    change: (c) => {
      c.server = { logLevel: 'loud' }
      c.routes[0].mode = 'watch'
      c.routes.push({ id: 'r1', match: { path: '/x', prefix: 'yes' } })
    },
    problems: [
      'server.logLevel: must be one of: fatal, error, warn, info, debug, trace, silent',
      'routes[0].mode: must be one of: enforce, audit',
      'routes[1].upstream: is required',
      'routes[1].match.prefix: must be a boolean'
    ]
  }
]

for (const c of problemCases) {
  t.test(c.name, async (t) => {
    const config = minimal()
    c.change(config)
    t.strictSame(problemsOf(config), c.problems)
  })
}

t.test('the error carries its source and the problems as data', async (t) => {
  const config = minimal()
  delete config.routes
  const err = t.throws(() => parseConfigText(JSON.stringify(config), 'conf/x.json', {})) as ConfigError
  t.ok(err instanceof ConfigError)
  t.equal(err.source, 'conf/x.json')
  t.equal(err.code, 'ERR_CONFIG_INVALID')
  t.strictSame(err.problems, [{ path: 'routes', message: 'is required' }])
  t.equal(err.message, 'invalid config conf/x.json: routes: is required')
})

t.test('environment variables are substituted before validation', async (t) => {
  const yaml = `
server:
  proxy: { port: "\${PORT}" }
  admin:
    port: \${ADMIN_PORT:-9999}
    host: \${ADMIN_HOST:-127.0.0.1}
  trustProxy: \${TRUST_PROXY}
upstreams:
  todo: { url: "http://\${TODO_HOST}:3000" }
routes:
  - id: r0
    match: { path: "/todos$\${x}" }
    upstream: todo
    policy: { clients: { deny: ["\${DENIED_CLIENT}"] } }
`
  const config = parseConfigText(yaml, 'x.yaml', { PORT: '8081', ADMIN_HOST: '', TRUST_PROXY: 'true', TODO_HOST: 'todo-api', DENIED_CLIENT: '12345' })
  t.strictSame(config.server.proxy, { host: '0.0.0.0', port: 8081, http2: false }, 'whole placeholder re-typed as a number, quoted or not')
  t.strictSame({ host: config.server.admin.host, port: config.server.admin.port }, { host: '127.0.0.1', port: 9999 }, 'defaults for unset and for empty')
  t.equal(config.server.trustProxy, true)
  t.equal(config.upstreams.todo?.url, 'http://todo-api:3000')
  t.equal(config.routes[0]?.match.path, '/todos${x}', '$${ is a literal ${')
  t.strictSame(config.routes[0]?.policy.clients?.deny, ['12345'], 'a numeric value stays a string where a string is wanted')
})

t.test('an unset variable is reported once, at its path, with the other problems', async (t) => {
  const config = minimal()
  config.server = { proxy: { port: '${PORT}' }, workers: 0 }
  t.strictSame(problemsOf(config), [
    'server.proxy.port: environment variable PORT is not set',
    'server.workers: must be at least 1'
  ])
})

t.test('a YAML syntax error gives line and column, and nothing else', async (t) => {
  t.strictSame(problemsOfText('upstreams:\n  todo: url: http://todo\n', 'x.yaml'), [
    'YAML syntax error at line 2, column 9: Nested mappings are not allowed in compact mappings'
  ])
})

t.test('a placeholder in a YAML flow mapping gets a hint to quote it', async (t) => {
  const [problem] = problemsOfText('server: { proxy: { port: ${PORT} } }\n', 'x.yaml', { PORT: '1' })
  t.match(problem, /^YAML syntax error at line 1, column \d+: .*\(inside \{ \} or \[ \], quote placeholders: "\$\{VAR\}"\)$/)
})

t.test('duplicate keys in YAML are each reported', async (t) => {
  t.strictSame(problemsOfText('routes: []\nroutes: []\nupstreams: {}\nupstreams: {}\n', 'x.yaml'), [
    'YAML syntax error at line 2, column 1: Map keys must be unique',
    'YAML syntax error at line 4, column 1: Map keys must be unique'
  ])
})

t.test('YAML merge keys share a block', async (t) => {
  const config = parseConfigText(`
upstreams: { todo: { url: http://todo } }
routes:
  - &first { id: a, match: { path: /a }, upstream: todo, mode: audit }
  - { <<: *first, id: b, match: { path: /b } }
`, 'x.yaml', {})
  t.equal(config.routes[1]?.id, 'b')
  t.equal(config.routes[1]?.mode, 'audit')
  t.equal(config.routes[1]?.upstream, 'todo')
})

t.test('a .json source is parsed as JSON', async (t) => {
  const config = parseConfigText(JSON.stringify(minimal()), 'CONFIG.JSON', {})
  t.equal(config.routes[0]?.id, 'r0')
  t.strictSame(problemsOfText('{"routes": [],}', 'x.json'), [
    'JSON syntax error at line 1, column 15: Expected double-quoted property name'
  ])
  t.strictSame(problemsOfText('{\n  "routes": [\n', 'x.json'), ['JSON syntax error at line 3, column 1: Unexpected end of JSON input'])
})

t.test('an empty file or a non-object says so', async (t) => {
  t.strictSame(problemsOfText('', 'x.yaml'), ['the config is empty'])
  t.strictSame(problemsOfText('# nothing\n', 'x.yaml'), ['the config is empty'])
  t.strictSame(problemsOfText('- a\n', 'x.yaml'), ['the config must be an object (a mapping with at least upstreams and routes)'])
})

t.test('readConfigFile reads a file, and reports one it cannot read', async (t) => {
  const dir = t.testdir({ 'scopegate.yaml': 'upstreams: { todo: { url: "${URL}" } }\nroutes: [{ id: r, match: { path: / }, upstream: todo }]\n' })
  const config = await readConfigFile(join(dir, 'scopegate.yaml'), { URL: 'http://todo' })
  t.equal(config.upstreams.todo?.url, 'http://todo')

  const missing = join(dir, 'missing.yaml')
  await t.rejects(readConfigFile(missing, {}), {
    name: 'ConfigError',
    source: missing,
    problems: [{ path: '', message: 'cannot read config file: ENOENT' }]
  })
})
