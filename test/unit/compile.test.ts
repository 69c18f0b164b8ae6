import t from 'tap'
import { compileConfig, mergePolicy } from '../../src/config/compile.js'
import { parseConfigText } from '../../src/config/parse.js'
import { ConfigError, type ConfigProblem } from '../../src/config/problems.js'
import type { RawConfig } from '../../src/config/types.js'
import { configProblems, expectConfigProblems } from '../helpers/config-problems.js'
import { compileTestConfig } from '../helpers/gateway.js'

type Obj = Record<string, unknown>

const issuer = (id: string, iss: string, extra: Obj = {}): Obj =>
  ({ id, issuer: iss, jwksUri: `${iss}/jwks.json`, algorithms: ['RS256'], audiences: ['https://todo.api'], ...extra })

/** A valid config; each test adds what it needs. */
function config (extra: Obj = {}): Obj {
  return {
    issuers: [issuer('auth0', 'https://tenant.example.com')],
    upstreams: { todo: { url: 'http://todo-api:3000' } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' }],
    ...extra
  }
}

/** The problems compiling this config reports; throws when it compiles. */
function problemsOf (obj: Obj): ConfigProblem[] {
  return expectConfigProblems(() => compileTestConfig(obj))
}

/** Schema-valid raw config, to reach checks in compile.ts that the schema would catch first. */
function raw (obj: Obj): RawConfig {
  return parseConfigText(JSON.stringify(obj), 'raw.json', {})
}

function compileProblems (rawConfig: RawConfig): ConfigProblem[] {
  return configProblems(() => compileConfig(rawConfig))
}

t.test('a valid config compiles', async (t) => {
  const compiled = compileTestConfig(config())
  t.equal(compiled.routes.length, 1)
  t.equal(compiled.issuersByIss.get('https://tenant.example.com')?.id, 'auth0')
  t.equal(compiled.upstreams.get('todo')?.base, 'http://todo-api:3000')
  t.equal(compiled.routes[0]?.upstream.id, 'todo')
})

t.test('every semantic problem is reported at once, each with its path', async (t) => {
  const problems = problemsOf({
    issuers: [
      issuer('auth0', 'https://tenant.example.com'),
      issuer('auth0', 'https://other.example.com'),
      issuer('again', 'https://tenant.example.com')
    ],
    upstreams: { todo: { url: 'http://todo-api:3000' } },
    routes: [
      {
        id: 'todos',
        match: { path: '/todos', prefix: true },
        upstream: 'nowhere',
        policy: { issuers: ['auth0', 'okta'], network: { allow: ['10.0.0.0/8', '10.0.0.300/8'] } }
      },
      { id: 'todos', match: { path: '/a/../b' }, upstream: 'todo', stripPrefix: true },
      { id: 'todos-again', match: { path: '/todos', prefix: true }, upstream: 'todo' },
      { id: 'tenant', match: { path: '/tenant' }, upstream: 'todo', forward: { claims: { Authorization: 'tenant' } } },
      { id: 'reissued', match: { path: '/reissued' }, upstream: 'todo', forward: { authorization: 'reissue' } }
    ]
  })
  const byPath = new Map(problems.map((p) => [p.path, p.message]))
  const expected: Array<[path: string, message: RegExp]> = [
    ['issuers[1].id', /duplicate issuer id "auth0"/],
    ['issuers[2].issuer', /the same issuer as issuers\[0\]/],
    ['routes[0].upstream', /unknown upstream "nowhere"/],
    ['routes[0].policy.issuers[1]', /unknown issuer "okta"/],
    ['routes[0].policy.network.allow[1]', /"10\.0\.0\.300\/8" is not an IP address or CIDR/],
    ['routes[1].id', /duplicate route id "todos"/],
    ['routes[1].match.path', /must be a normalized path \(did you mean "\/b"\?\)/],
    ['routes[1].stripPrefix', /only applies to prefix routes/],
    ['routes[2].match', /matches the same requests as route "todos" \(routes\[0\]\)/],
    ['routes[3].forward.claims', /"Authorization" is a header scopegate cannot set from a claim/],
    ['routes[4].forward.authorization', /reissue needs a top-level reissue section/]
  ]
  for (const [path, message] of expected) t.match(byPath.get(path), message, path)
  t.equal(problems.length, expected.length, 'nothing else is reported')
})

t.test('the error message lists every problem', async (t) => {
  try {
    compileTestConfig(config({ routes: [{ id: 'a', match: { path: '/a' }, upstream: 'x' }, { id: 'a', match: { path: '/b' }, upstream: 'todo' }] }))
    t.fail('should not compile')
  } catch (err) {
    t.type(err, ConfigError)
    t.equal((err as ConfigError).code, 'ERR_CONFIG_INVALID')
    t.match((err as Error).message, /routes\[0\]\.upstream: unknown upstream "x"; routes\[1\]\.id: duplicate route id "a"/)
  }
})

t.test('keys come from exactly one of discovery and jwksUri', async (t) => {
  t.test('the schema refuses both and neither, naming the issuer', async (t) => {
    const both = problemsOf(config({ issuers: [issuer('a', 'https://a.example', { discovery: true })] }))
    t.same(both, [{ path: 'issuers[0].jwksUri', message: 'must not be set when discovery is true' }])
    const { jwksUri: _unused, ...bare } = issuer('a', 'https://a.example')
    const neither = problemsOf(config({ issuers: [bare] }))
    t.same(neither, [{ path: 'issuers[0].jwksUri', message: 'is required unless discovery: true' }])
    const off = problemsOf(config({ issuers: [{ ...bare, discovery: false }] }))
    t.same(off, [{ path: 'issuers[0].jwksUri', message: 'is required unless discovery: true' }])
  })

  t.test('compile refuses them too, for a config that did not come through the schema', async (t) => {
    const both = raw(config())
    const first = both.issuers[0] as RawConfig['issuers'][number]
    first.discovery = true
    t.same(compileProblems(both), [{ path: 'issuers[0]', message: 'set either discovery: true or jwksUri, not both' }])
    delete first.jwksUri
    first.discovery = false
    t.same(compileProblems(both), [{ path: 'issuers[0]', message: 'needs discovery: true or a jwksUri' }])
  })

  t.test('discovery reads the issuer\'s openid-configuration', async (t) => {
    const { jwksUri: _unused, ...bare } = issuer('a', 'https://a.example/tenant/')
    const compiled = compileTestConfig(config({ issuers: [{ ...bare, discovery: true }] }))
    t.same(compiled.issuersById.get('a')?.keys, { kind: 'discovery', url: 'https://a.example/tenant/.well-known/openid-configuration' })
  })
})

t.test('route paths must be written normalized', async (t) => {
  const cases: Array<[path: string, problem: string | null]> = [
    ['/a/../b', 'must be a normalized path (did you mean "/b"?)'],
    ['/a//b', 'must be a normalized path (did you mean "/a/b"?)'],
    ['/a/./b', 'must be a normalized path (did you mean "/a/b"?)'],
    ['/%7Etodos', 'must be a normalized path (did you mean "/~todos"?)'],
    ['/a%2Fb', 'must be a valid normalized path'],
    ['/..', 'must be a valid normalized path'],
    ['/todos/', null],
    ['/', null]
  ]
  for (const [path, problem] of cases) {
    const obj = config({ routes: [{ id: 'r', match: { path, prefix: true }, upstream: 'todo' }] })
    if (problem === null) {
      t.doesNotThrow(() => compileTestConfig(obj), path)
    } else {
      t.same(problemsOf(obj), [{ path: 'routes[0].match.path', message: problem }], path)
    }
  }
})

t.test('ambiguous routes are refused; distinct methods and exact-vs-prefix are not', async (t) => {
  const route = (id: string, match: Obj): Obj => ({ id, match, upstream: 'todo' })
  t.same(problemsOf(config({
    routes: [route('read', { path: '/todos', methods: ['GET'] }), route('head', { path: '/todos', methods: ['HEAD'] })]
  })).map((p) => p.path), ['routes[1].match'])
  t.doesNotThrow(() => compileTestConfig(config({
    routes: [
      route('read', { path: '/todos', prefix: true, methods: ['GET'] }),
      route('write', { path: '/todos', prefix: true, methods: ['POST'] }),
      route('exact', { path: '/todos' })
    ]
  })))
})

t.test('forward.claims may not name a header that carries the request or an identity header', async (t) => {
  for (const header of ['authorization', 'Host', 'content-length', 'Transfer-Encoding', 'connection', 'cookie', 'x-forwarded-for', 'x-auth-subject', 'X-Auth-Scopes']) {
    const problems = problemsOf(config({
      routes: [{ id: 'r', match: { path: '/r' }, upstream: 'todo', forward: { claims: { [header]: 'tenant' } } }]
    }))
    t.same(problems.map((p) => p.path), ['routes[0].forward.claims'], header)
  }
  const compiled = compileTestConfig(config({
    routes: [{ id: 'r', match: { path: '/r' }, upstream: 'todo', forward: { claims: { 'X-Tenant-Id': 'tenant', 'x-org': ['org', 'id'] } } }]
  }))
  t.same([...compiled.routes[0]?.forward.claims ?? []], [['x-tenant-id', ['tenant']], ['x-org', ['org', 'id']]], 'names lower-cased, claims as segments')
  t.ok(compiled.identityHeaders.has('x-tenant-id'), 'a claim header is stripped from client requests like the identity headers')
  t.ok(compiled.identityHeaders.has('x-auth-subject'))
})

t.test('reissue with a reissue section compiles', async (t) => {
  const compiled = compileTestConfig(config({
    reissue: { issuer: 'https://scopegate.internal', keys: [{ file: '/etc/scopegate/keys/current.jwk.json' }] },
    routes: [{ id: 'r', match: { path: '/r' }, upstream: 'todo', forward: { authorization: 'reissue' } }]
  }))
  t.equal(compiled.routes[0]?.forward.authorization, 'reissue')
  t.equal(compiled.routes[0]?.forward.audience, 'http://todo-api:3000', 'the audience defaults to the upstream')
  t.equal(compiled.reissue?.algorithm, 'ES256')
})

t.test('defaults merge one level deep into each route policy', async (t) => {
  const compiled = compileTestConfig(config({
    defaults: {
      policy: {
        audience: { denyMissing: true, deny: ['http://default.api'] },
        clients: { deny: ['CLIENT_ID'] },
        grants: { roles: { admin: ['*'] }, clients: { cli: ['read'] } },
        scopes: { require: ['read'] }
      }
    },
    routes: [
      { id: 'plain', match: { path: '/plain' }, upstream: 'todo' },
      {
        id: 'custom',
        match: { path: '/custom' },
        upstream: 'todo',
        policy: {
          audience: { deny: ['http://todoapi2.api'] },
          grants: { roles: { user: ['read'] } },
          scopes: { match: 'any' }
        }
      }
    ]
  }))
  const [plain, custom] = compiled.routes.map((r) => r.policy)
  t.equal(plain?.audience.denyMissing, true, 'a route with no policy gets the defaults')
  t.same([...plain?.audience.deny ?? []], ['http://default.api'])
  t.same([...plain?.clients.deny ?? []], ['CLIENT_ID'])

  t.equal(custom?.audience.denyMissing, true, 'route audience.deny keeps the default audience.denyMissing')
  t.same([...custom?.audience.deny ?? []], ['http://todoapi2.api'], 'a key the route sets replaces the default list')
  t.same([...custom?.clients.deny ?? []], ['CLIENT_ID'], 'a section the route does not mention is inherited')
  t.same(custom?.scopes, { require: ['read'], match: 'any' }, 'scopes merge key by key')
  t.same([...custom?.grants.roles?.keys() ?? []], ['user'], 'grants are replaced whole, not merged: a route never inherits extra grants')
  t.equal(custom?.grants.clients, null, 'a route that sets grants without clients does not inherit the default clients map')
})

t.test('mergePolicy leaves both inputs alone', async (t) => {
  const defaults = { audience: { denyMissing: true } }
  const route = { audience: { deny: ['x'] } }
  t.same(mergePolicy(defaults, route), { audience: { denyMissing: true, deny: ['x'] } })
  t.same(defaults, { audience: { denyMissing: true } })
  t.same(route, { audience: { deny: ['x'] } })
})

t.test('policy defaults when nothing is configured', async (t) => {
  const policy = compileTestConfig(config()).routes[0]?.policy
  t.same(policy?.issuers, null)
  t.same(policy?.network, { allow: null, deny: null })
  t.equal(policy?.audience.allow, null)
  t.equal(policy?.audience.denyMissing, true, 'deny by default: a token without aud is not for this API')
  t.equal(policy?.clients.allow, null)
  t.same(policy?.grants, { roles: null, clients: null })
  t.same(policy?.scopes, { require: [], match: 'all' })
  t.same(policy?.denyStatus, { policy: 401, scope: 403 })
})

t.test('"*" in a grant compiles to all; other grants to a set', async (t) => {
  const compiled = compileTestConfig(config({
    routes: [{
      id: 'r',
      match: { path: '/r' },
      upstream: 'todo',
      policy: {
        grants: {
          roles: { admin: ['*'], mixed: ['read', '*'], editor: ['read', 'write', 'read'], nobody: [] },
          clients: { cli: ['read'] }
        },
        scopes: { require: ['read', 'read', 'write'] }
      }
    }]
  }))
  const { grants, scopes } = compiled.routes[0]?.policy ?? {}
  t.same(grants?.roles?.get('admin'), { all: true })
  t.same(grants?.roles?.get('mixed'), { all: true }, '"*" among other scopes still grants all')
  const editor = grants?.roles?.get('editor')
  t.same(editor?.all === false ? [...editor.scopes] : null, ['read', 'write'])
  const nobody = grants?.roles?.get('nobody')
  t.same(nobody?.all === false ? [...nobody.scopes] : null, [], 'an empty list grants nothing')
  t.same(scopes?.require, ['read', 'write'], 'required scopes are de-duplicated')
})

t.test('the compiled config is frozen', async (t) => {
  const compiled = compileTestConfig(config({
    server: { trustProxy: ['10.0.0.0/8'] },
    routes: [{ id: 'r', match: { path: '/r', methods: ['GET'] }, upstream: 'todo', policy: { audience: { deny: ['x'] } } }]
  }))
  const route = compiled.routes[0]
  const frozen: Array<[name: string, value: unknown]> = [
    ['config', compiled],
    ['server', compiled.server],
    ['routes', compiled.routes],
    ['a route', route],
    ['its policy', route?.policy],
    ['its audience policy', route?.policy.audience],
    ['its methods', route?.methods],
    ['its upstream', route?.upstream],
    ['its forward options', route?.forward],
    ['an issuer', compiled.issuersById.get('auth0')],
    ['an issuer\'s claim config', compiled.issuersById.get('auth0')?.claims],
    ['the upstream map', compiled.upstreams],
    ['a trustProxy matcher', compiled.server.trustProxy]
  ]
  for (const [name, value] of frozen) t.ok(Object.isFrozen(value), name)
  t.throws(() => { (compiled as { source: string }).source = 'x' }, TypeError, 'strict-mode writes throw')
  t.throws(() => { (route as { id: string }).id = 'x' }, TypeError)
})

t.test('trustProxy: true trusts every address, false none, a list its CIDRs', async (t) => {
  const trusting = (trustProxy: unknown) => compileTestConfig(config({ server: { trustProxy } })).server.trustProxy

  const all = trusting(true)
  for (const ip of ['10.0.0.1', '203.0.113.9', '::1', '2001:db8::1', '::ffff:1.2.3.4']) t.equal(all?.has(ip), true, `true: ${ip}`)
  t.equal(trusting(false), null, 'false: no matcher')
  t.equal(trusting([]), null, 'an empty list: no matcher')

  const list = trusting(['10.0.0.0/8', '2001:db8::/32'])
  const cases: Array<[ip: string, trusted: boolean]> = [
    ['10.1.2.3', true], ['::ffff:10.1.2.3', true], ['2001:db8::7', true], ['11.0.0.1', false], ['2001:db9::1', false]
  ]
  for (const [ip, trusted] of cases) t.equal(list?.has(ip), trusted, `list: ${ip}`)

  t.same(problemsOf(config({ server: { trustProxy: ['10.0.0.0/8', 'proxy.local'] } })),
    [{ path: 'server.trustProxy[1]', message: '"proxy.local" is not an IP address or CIDR' }])
})

t.test('durations compile to milliseconds and seconds', async (t) => {
  const compiled = compileTestConfig(config({
    server: { requestTimeout: '2m' },
    issuers: [issuer('auth0', 'https://tenant.example.com', { clockTolerance: '90s', jwks: { cooldown: '250ms' } })],
    upstreams: { todo: { url: 'http://todo-api:3000/base/', timeout: '5s' } }
  }))
  t.equal(compiled.server.requestTimeoutMs, 120_000)
  t.equal(compiled.issuersById.get('auth0')?.clockToleranceSec, 90)
  t.equal(compiled.issuersById.get('auth0')?.jwks.cooldownMs, 250)
  t.equal(compiled.issuersById.get('auth0')?.jwks.refreshIntervalMs, 600_000, 'defaults filled in')
  t.same(compiled.upstreams.get('todo'), { id: 'todo', base: 'http://todo-api:3000/base', origin: 'http://todo-api:3000', basePath: '/base', timeoutMs: 5000, host: 'todo-api:3000', preserveHost: false, tls: null, http2: false }, 'base without trailing slash')
})

t.test('a route that needs a token needs an issuer', async (t) => {
  t.same(problemsOf(config({ issuers: [] })), [{ path: 'routes[0].auth', message: 'needs at least one issuer' }])
  t.doesNotThrow(() => compileTestConfig(config({ issuers: [], routes: [{ id: 'open', match: { path: '/' }, upstream: 'todo', auth: 'none' }] })))
})

t.test('forwarding: defaults, lower-cased clientIpHeaders, refused names', async (t) => {
  t.same(compileTestConfig(config()).server.forwarded,
    { xForwardedFor: 'append', xForwardedProto: true, xForwardedHost: true, xForwardedPort: true, forwarded: false, clientIpHeaders: [] })
  const compiled = compileTestConfig(config({ server: { forwarded: { xForwardedFor: 'replace', clientIpHeaders: ['X-Real-IP'] } } }))
  t.equal(compiled.server.forwarded.xForwardedFor, 'replace')
  t.same(compiled.server.forwarded.clientIpHeaders, ['x-real-ip'])
  t.same(problemsOf(config({
    server: { forwarded: { clientIpHeaders: ['X-Forwarded-For', 'Host', 'x-auth-subject', 'X-Tenant'] } },
    routes: [{ id: 'todos', match: { path: '/todos' }, upstream: 'todo', forward: { claims: { 'x-tenant': 'tenant' } } }]
  })).map((p) => p.path), [0, 1, 2, 3].map((i) => `server.forwarded.clientIpHeaders[${i}]`))
  t.same(problemsOf(config({ server: { forwarded: { xForwardedFor: 'keep' } } })).map((p) => p.path), ['server.forwarded.xForwardedFor'],
    'passing the client\'s chain through unchanged is not a mode')
})

t.test('an upstream sends its own host unless preserveHost; a route strips the built-in list and its own', async (t) => {
  const compiled = compileTestConfig(config({
    upstreams: { todo: { url: 'http://todo-api:3000/base' }, web: { url: 'https://web.internal', preserveHost: true } },
    routes: [
      { id: 'todos', match: { path: '/todos' }, upstream: 'todo', forward: { stripHeaders: ['X-Debug-User'] } },
      { id: 'web', match: { path: '/web' }, upstream: 'web' }
    ]
  }))
  t.same([compiled.upstreams.get('todo')?.host, compiled.upstreams.get('todo')?.preserveHost], ['todo-api:3000', false])
  t.same([compiled.upstreams.get('web')?.host, compiled.upstreams.get('web')?.preserveHost], ['web.internal', true], 'the default port is not written')
  const [todos, web] = compiled.routes
  t.ok(todos?.forward.stripHeaders.has('x-debug-user'), 'lower-cased')
  t.ok(todos?.forward.stripHeaders.has('x-http-method-override'), 'the built-in list too')
  t.notOk(web?.forward.stripHeaders.has('x-debug-user'), 'only on the route that names it')
  t.ok(web?.forward.stripHeaders.has('x-original-url'))
  t.same(problemsOf(config({ routes: [{ id: 'todos', match: { path: '/todos' }, upstream: 'todo', forward: { stripHeaders: ['bad header'] } }] }))
    .map((p) => p.path), ['routes[0].forward.stripHeaders[0]'])
})
