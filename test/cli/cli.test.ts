/**
 * The `scopegate` command as an operator runs it: `node dist/cli.js …` in a child process, with config
 * and claims files written to a fresh directory. `npm test` builds dist/ first.
 */
import { join } from 'node:path'
import t from 'tap'
import { decodeJwt, decodeProtectedHeader, importJWK, jwtVerify } from 'jose'
import { createDemoKey, DEMO_ROLES_CLAIM, publicJwk } from '../../src/demo/dev-issuer.js'
import { run, type Result } from '../helpers/cli.js'
import { makeKey, mintToken, startJwksServer } from '../helpers/jwks-server.js'
import { makeCertificates } from '../helpers/openssl-thumbprints.js'

// Each run is a Node start-up plus loading the whole CLI (about a second of CPU, several on a busy
// machine), so independent runs go in parallel and the file gets more than tap's default time.
t.setTimeout(300_000)
t.jobs = 4

const CONFIG = `
issuers:
  - id: auth0
    issuer: https://tenant.example.com/
    jwksUri: https://tenant.example.com/.well-known/jwks.json
    algorithms: [RS256]
    audiences: [https://todo.api]
    claims:
      roles: https://example.com/roles
upstreams:
  todo: { url: "http://todo-api:3000" }
defaults:
  policy:
    audience: { deny: [http://todoapi2.api], denyMissing: true }
routes:
  - id: todos-read
    match: { path: /todos, prefix: true, methods: [GET] }
    upstream: todo
    policy:
      grants:
        roles: { editor: [read:todos, write:todos], user: [read:todos] }
      scopes: { require: [read:todos] }
  - id: shadow
    match: { path: /shadow }
    upstream: todo
    mode: audit
  - id: health
    match: { path: /health }
    upstream: todo
    auth: none
`

const SCHEMA_ERRORS = `
upstreams:
  todo: { url: "http://todo-api:3000" }
routes:
  - id: todos
    match: { path: /todos, prefix: true }
    upstream: todo
    auth: maybe
    policy:
      audience: { deny: [123], denyMising: true }
`

const COMPILE_ERRORS = `
issuers:
  - id: auth0
    issuer: https://tenant.example.com/
    jwksUri: https://tenant.example.com/jwks
    algorithms: [RS256]
    audiences: [https://todo.api]
upstreams:
  todo: { url: "http://todo-api:3000" }
routes:
  - id: todos
    match: { path: /todos/../admin }
    upstream: nowhere
    policy:
      network: { allow: [10.0.0.0/8, 10.0.0.0/33] }
`

/** Schema problems (issuers[0], routes[1]) beside meaning problems in the parts the schema accepts (routes[0], routes[2]). */
const BOTH_ERRORS = `
issuers:
  - { id: auth0, issuer: "https://tenant.example.com/", jwksUri: "https://tenant.example.com/jwks", algorithms: [HS256], audiences: [todo] }
upstreams: { todo: { url: "http://todo-api:3000" } }
routes:
  - { id: todos, match: { path: /todos }, upstream: nowhere, policy: { issuers: [auth0] } }
  - { id: admin, match: { path: /admin }, upstream: todo, auth: maybe }
  - { id: todos, match: { path: /other }, upstream: todo }
`

const ALICE = {
  iss: 'https://tenant.example.com/',
  sub: 'alice',
  client_id: 'todo-web',
  aud: 'https://todo.api',
  scope: 'write:todos read:todos',
  'https://example.com/roles': ['user']
}

t.test('validate', async (t) => {
  t.jobs = 4
  const dir = t.testdir({
    'good.yaml': CONFIG,
    'schema.yaml': SCHEMA_ERRORS,
    'compile.yaml': COMPILE_ERRORS,
    'both.yaml': BOTH_ERRORS,
    config: { 'scopegate.yaml': CONFIG }
  })

  t.test('a good config: exit 0 and a one-line summary', async (t) => {
    const { code, stdout, stderr } = await run(['validate', '--config', 'good.yaml'], dir)
    t.equal(code, 0)
    t.equal(stdout, 'good.yaml: ok: 1 issuer(s), 1 upstream(s), 3 route(s) (1 in audit mode)\n')
    t.equal(stderr, '')
  })

  t.test('the config path falls back to $SCOPEGATE_CONFIG, then config/scopegate.yaml', async (t) => {
    const fromEnv = await run(['validate'], dir, { SCOPEGATE_CONFIG: join(dir, 'good.yaml') })
    t.equal(fromEnv.code, 0)
    t.match(fromEnv.stdout, /good\.yaml: ok:/)
    const fromDefault = await run(['validate'], dir)
    t.equal(fromDefault.code, 0)
    t.match(fromDefault.stdout, /^config\/scopegate\.yaml: ok:/)
  })

  t.test('schema problems: exit 1 and every problem on its own line with its path', async (t) => {
    const { code, stdout, stderr } = await run(['validate', '--config', 'schema.yaml'], dir)
    t.equal(code, 1)
    t.equal(stdout, '')
    const lines = stderr.trim().split('\n')
    t.equal(lines[0], 'schema.yaml: invalid config')
    t.ok(lines.includes('routes[0].policy.audience.deny[0]: must be a string'), 'wrong type')
    t.ok(lines.includes('routes[0].auth: must be one of: required, optional, none'), 'bad enum')
    t.ok(lines.includes('routes[0].policy.audience: unknown key "denyMising" (did you mean "denyMissing"?)'), 'typo')
    t.equal(lines.length, 4, 'nothing else')
  })

  t.test('cross-reference problems: exit 1 and every problem with its path', async (t) => {
    const { code, stderr } = await run(['validate', '--config', 'compile.yaml'], dir)
    t.equal(code, 1)
    const lines = stderr.trim().split('\n')
    t.equal(lines[0], 'compile.yaml: invalid config')
    t.ok(lines.includes('routes[0].match.path: must be a normalized path (did you mean "/admin"?)'))
    t.ok(lines.includes('routes[0].upstream: unknown upstream "nowhere"'))
    t.ok(lines.includes('routes[0].policy.network.allow[1]: "10.0.0.0/33" is not an IP address or CIDR'))
    t.equal(lines.length, 4)
  })

  t.test('schema and meaning problems in one pass: the parts the schema accepts are checked too', async (t) => {
    const { code, stdout, stderr } = await run(['validate', '--config', 'both.yaml'], dir)
    t.equal(code, 1)
    t.equal(stdout, '')
    t.same(stderr.trim().split('\n'), [
      'both.yaml: invalid config',
      'issuers[0].algorithms[0]: "HS256" is refused: symmetric and none algorithms cannot be pinned',
      'routes[1].auth: must be one of: required, optional, none',
      'routes[0].upstream: unknown upstream "nowhere"',
      'routes[2].id: duplicate route id "todos"'
    ], 'the issuer with a schema problem still counts as known (no "unknown issuer" for routes[0])')
  })

  t.test('re-issue key files are read: a missing or public-only signing key is reported with its path', async (t) => {
    const reissue = (keys: string): string => `${CONFIG}\nreissue:\n  issuer: https://scopegate.internal\n  keys: ${keys}\n`
    const keyDir = t.testdir({
      'missing.yaml': reissue('[{ file: nope.jwk.json }]'),
      'public.yaml': reissue('[{ file: public.jwk.json }]'),
      'public.jwk.json': JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'WKn-ZIGevcwGIyyrzFoZNBdaq9_TsqzGl96oc0CWuis', y: 'y77t-RvAHRKTsSGdIYUfweuOvwrvDD-Q3Hv5J0fSKbE' })
    })
    const missing = await run(['validate', '--config', 'missing.yaml'], keyDir)
    t.equal(missing.code, 1)
    t.match(missing.stderr, /missing\.yaml: invalid config\nreissue\.keys\[0\]\.file: nope\.jwk\.json: cannot be read \(ENOENT\)/)
    const publicOnly = await run(['validate', '--config', 'public.yaml'], keyDir)
    t.equal(publicOnly.code, 1)
    t.match(publicOnly.stderr, /reissue\.keys\[0\]\.file: public\.jwk\.json: is the signing key \(the first\), so it must be a private key/)
  })

  t.test('a missing file: exit 1 and why', async (t) => {
    const { code, stderr } = await run(['validate', '--config', 'missing.yaml'], dir)
    t.equal(code, 1)
    t.match(stderr, /missing\.yaml: invalid config\ncannot read config file: ENOENT/)
  })
})

t.test('explain --claims', async (t) => {
  t.jobs = 4
  const dir = t.testdir({
    'scopegate.yaml': CONFIG,
    'alice.json': JSON.stringify(ALICE),
    'no-aud.json': JSON.stringify({ ...ALICE, aud: undefined }),
    'intern.json': JSON.stringify({ ...ALICE, 'https://example.com/roles': ['intern'] }),
    'list.json': '[1, 2]'
  })
  const explain = (claims: string, extra: string[] = []): Promise<Result> =>
    run(['explain', '--config', 'scopegate.yaml', '--method', 'get', '--path', '/todos/../todos/1?x=1', '--claims', claims, ...extra], dir)

  t.test('allow: exit 0, one line per step', async (t) => {
    const { code, stdout, stderr } = await explain('alice.json', ['--ip', '10.1.2.3'])
    t.equal(code, 0, stderr)
    const lines = stdout.trim().split('\n')
    const expected: RegExp[] = [
      /^request +GET \/todos\/\.\.\/todos\/1\?x=1 from 10\.1\.2\.3$/,
      /^path +normalized to \/todos\/1$/,
      /^route +todos-read \(prefix \/todos, GET\) -> upstream todo http:\/\/todo-api:3000; auth required, mode enforce$/,
      /^token +from claims: signature and expiry NOT checked; issuer auth0$/,
      /^identity +sub alice, client todo-web, roles \[user\], aud \[https:\/\/todo\.api\]$/,
      /^scopes +token asks for \[write:todos read:todos\]$/,
      /^network +pass$/,
      /^issuer +pass$/,
      /^audience +pass$/,
      /^client +pass$/,
      /^roles +pass$/,
      /^narrow +\[write:todos read:todos\] -> \[read:todos\]$/,
      /^require +pass \(all of \[read:todos\]\)$/,
      /^header +x-auth-route: todos-read$/,
      /^header +x-auth-subject: alice$/,
      /^header +x-auth-client-id: todo-web$/,
      /^header +x-auth-scopes: read:todos$/,
      /^header +x-auth-roles: user$/,
      /^header +x-auth-issuer: https:\/\/tenant\.example\.com\/$/,
      /^header +authorization: keep$/,
      /^decision +ALLOW$/
    ]
    t.equal(lines.length, expected.length, stdout)
    expected.forEach((pattern, i) => t.match(lines[i], pattern, `line ${i + 1}`))
  })

  t.test('deny: exit 2, naming the check that failed', async (t) => {
    const { code, stdout } = await explain('no-aud.json')
    t.equal(code, 2)
    t.match(stdout, /\naudience +DENY 401 end_users_not_allowed \(audience_missing\): tokens without an audience are not allowed here\n/)
    t.match(stdout, /\ndecision +DENY 401 end_users_not_allowed \(audience_missing\)/)
    t.notMatch(stdout, /\nclient /, 'checks after the failing one are not run')
    t.notMatch(stdout, /\nheader /, 'no headers for a denied request')
  })

  t.test('deny after narrowing: exit 2, naming the required scopes', async (t) => {
    const { code, stdout } = await explain('intern.json')
    t.equal(code, 2)
    t.match(stdout, /\nnarrow +\[write:todos read:todos\] -> \[\]\n/)
    t.match(stdout, /\nrequire +DENY 403 insufficient_scope \(scope_insufficient\)/)
  })

  t.test('no route: exit 2', async (t) => {
    const { code, stdout } = await run(['explain', '--config', 'scopegate.yaml', '--method', 'DELETE', '--path', '/todos/1', '--claims', 'alice.json'], dir)
    t.equal(code, 2)
    t.match(stdout, /decision +DENY 404 no_route/)
  })

  t.test('audit mode: exit 0, saying what enforce mode would have answered', async (t) => {
    const { code, stdout } = await run(['explain', '--config', 'scopegate.yaml', '--method', 'GET', '--path', '/shadow', '--claims', 'no-aud.json'], dir)
    t.equal(code, 0)
    t.match(stdout, /decision +ALLOW \(audit mode; enforce would answer DENY 401 end_users_not_allowed/)
  })

  t.test('a claims file that is not a JSON object: exit 1', async (t) => {
    const files = ['list.json', 'missing.json']
    const results = await Promise.all(files.map((file) => explain(file)))
    files.forEach((file, i) => {
      t.equal(results[i]?.code, 1, file)
      t.match(results[i]?.stderr, new RegExp(`^${file.replace('.', '\\.')}: cannot read claims: `), file)
    })
  })
})

t.test('explain --host: the host match and each condition with its value; validate names a bad condition', async (t) => {
  const hosts = `${CONFIG.split('routes:')[0] ?? ''}routes:
  - id: a-api
    match: { path: /api, prefix: true, host: "*.example.com" }
    upstream: todo
    policy:
      roles: { require: [user] }
      conditions:
        - { claim: tenant, in: [acme, globex] }
        - cel: 'host.startsWith(claims.tenant + ".") && method == "GET"'
  - id: any-api
    match: { path: /api, prefix: true }
    upstream: todo
    auth: none
`
  const dir = t.testdir({
    'hosts.yaml': hosts,
    'bad.yaml': hosts.replace('method == "GET"', 'methd == "GET"'),
    'acme.json': JSON.stringify({ ...ALICE, tenant: 'acme' })
  })
  const explain = (host: string): Promise<Result> =>
    run(['explain', '--config', 'hosts.yaml', '--method', 'GET', '--path', '/api/x', '--claims', 'acme.json', '--host', host], dir)

  const allowed = await explain('acme.example.com:8443')
  t.equal(allowed.code, 0, allowed.stderr)
  t.match(allowed.stdout, /^request +GET \/api\/x from 127\.0\.0\.1 for host acme\.example\.com:8443\n/)
  t.match(allowed.stdout, /\nhost +acme\.example\.com matches \*\.example\.com\nroute +a-api /)
  t.match(allowed.stdout, /\nroles +pass\n/)
  t.match(allowed.stdout, /\ncondition +pass: tenant in \["acme","globex"\] \(value "acme"\)\n/)
  t.match(allowed.stdout, /\ncondition +pass: host\.startsWith\(claims\.tenant \+ "\."\) && method == "GET" \(value true\)\n/)

  const denied = await explain('globex.example.com')
  t.equal(denied.code, 2)
  t.match(denied.stdout, /\ncondition +pass: tenant in/)
  t.match(denied.stdout, /\ncondition +host\.startsWith.*\(value false\): DENY 403 insufficient_scope \(condition_failed\)/)

  const other = await explain('example.org')
  t.equal(other.code, 0)
  t.match(other.stdout, /\nhost +example\.org: the route answers every host\nroute +any-api /)

  const bad = await run(['validate', '--config', 'bad.yaml'], dir)
  t.equal(bad.code, 1)
  t.match(bad.stderr, /routes\[0\]\.policy\.conditions\[1\]\.cel: .*methd/)
})

t.test('explain --token verifies the signature against the issuer\'s keys', async (t) => {
  const key = await makeKey('RS256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  const config = CONFIG
    .replace('issuer: https://tenant.example.com/', `issuer: ${jwks.issuer}`)
    .replace('jwksUri: https://tenant.example.com/.well-known/jwks.json', `jwksUri: ${jwks.url}`)
  const dir = t.testdir({ 'scopegate.yaml': config })
  const token = await mintToken(key, { ...ALICE, iss: jwks.issuer })
  const explain = (jwt: string): Promise<Result> =>
    run(['explain', '--config', 'scopegate.yaml', '--method', 'GET', '--path', '/todos', '--token', jwt], dir)

  const good = await explain(token)
  t.equal(good.code, 0, good.stdout + good.stderr)
  t.match(good.stdout, /\ntoken +verified: issuer auth0, signature ok, expires /)
  t.notMatch(good.stdout, /NOT checked/)
  t.match(good.stdout, /\ndecision +ALLOW\n$/)

  const [h, , s] = token.split('.')
  const forged = `${h ?? ''}.${Buffer.from(JSON.stringify({ ...ALICE, iss: jwks.issuer, exp: 9_999_999_999, 'https://example.com/roles': ['editor'] })).toString('base64url')}.${s ?? ''}`
  const bad = await explain(forged)
  t.equal(bad.code, 2)
  t.match(bad.stdout, /\ntoken +DENY 401 invalid_token \(token_signature_invalid\)/)
})

t.test('usage errors exit 64', async (t) => {
  const dir = t.testdir({ 'scopegate.yaml': CONFIG, 'alice.json': JSON.stringify(ALICE) })
  const cases: Array<[name: string, args: string[], stderr: RegExp]> = [
    ['explain without --method', ['explain', '--config', 'scopegate.yaml', '--path', '/todos', '--claims', 'alice.json'], /explain needs --method, --path, and one of --token or --claims/],
    ['explain without a token or claims', ['explain', '--config', 'scopegate.yaml', '--method', 'GET', '--path', '/todos'], /explain needs/],
    ['explain with both a token and claims', ['explain', '--method', 'GET', '--path', '/todos', '--claims', 'alice.json', '--token', 'a.b.c'], /explain needs/],
    ['an unknown command', ['frobnicate'], /unknown command "frobnicate"\nusage: scopegate <command>/],
    ['no command', [], /^$/],
    ['an unknown flag', ['validate', '--confg', 'scopegate.yaml'], /Unknown option '--confg'/],
    ['a flag without its value', ['explain', '--method'], /argument missing/]
  ]
  const results = await Promise.all(cases.map(([, args]) => run(args, dir)))
  cases.forEach(([name, , stderr], i) => {
    t.equal(results[i]?.code, 64, name)
    t.match(results[i]?.stderr, stderr, name)
  })
  const help = await run(['--help'], dir)
  t.equal(help.code, 0, '--help is not an error')
  t.match(help.stdout, /usage: scopegate <command>/)
})

t.test('token', async (t) => {
  t.jobs = 4
  const demoKey = await createDemoKey('http://127.0.0.1:8081')
  const dir = t.testdir({ 'demo-key.json': JSON.stringify(demoKey), 'broken-key.json': '{}' })

  t.test('without a key file: exit 1 and how to get one', async (t) => {
    const { code, stdout, stderr } = await run(['token', '--key', join(dir, 'nope.json')], dir)
    t.equal(code, 1)
    t.equal(stdout, '')
    t.equal(stderr, `no demo issuer key at ${join(dir, 'nope.json')}: start \`scopegate demo\` (npm start) first, or pass --key\n`)
  })

  t.test('prints a signed JWT whose claims are the ones asked for', async (t) => {
    const { code, stdout, stderr } = await run([
      'token', '--key', 'demo-key.json', '--sub', 'alice', '--client', 'todo-cli', '--aud', 'https://todo.api,http://todoapi2.api',
      '--scope', 'read:todos write:todos', '--roles', 'editor,user', '--exp', '120'
    ], dir)
    t.equal(code, 0, stderr)
    const jwt = stdout.trim()
    t.match(jwt, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'one compact JWT on stdout')
    const { payload, protectedHeader } = await jwtVerify(jwt, await importJWK(publicJwk(demoKey), 'ES256'), { issuer: demoKey.issuer })
    t.same(protectedHeader, { alg: 'ES256', kid: demoKey.privateJwk.kid, typ: 'at+jwt' })
    t.equal(payload.sub, 'alice')
    t.equal(payload.client_id, 'todo-cli')
    t.same(payload.aud, ['https://todo.api', 'http://todoapi2.api'])
    t.equal(payload.scope, 'read:todos write:todos')
    t.same(payload[DEMO_ROLES_CLAIM], ['editor', 'user'])
    t.equal((payload.exp ?? 0) - (payload.iat ?? 0), 120)
  })

  t.test('defaults: demo user and client, no aud, one hour', async (t) => {
    const { code, stdout } = await run(['token', '--key', 'demo-key.json'], dir)
    t.equal(code, 0)
    const payload = decodeJwt(stdout.trim())
    t.equal(payload.sub, 'demo-user')
    t.equal(payload.client_id, 'demo-client')
    t.equal(payload.aud, undefined)
    t.equal(payload.scope, undefined)
    t.equal((payload.exp ?? 0) - (payload.iat ?? 0), 3600)
    t.equal(decodeProtectedHeader(stdout.trim()).alg, 'ES256')
  })

  t.test('a single --aud is still an audience', async (t) => {
    const { stdout } = await run(['token', '--key', 'demo-key.json', '--aud', 'https://todo.api'], dir)
    t.same(decodeJwt(stdout.trim()).aud, ['https://todo.api'])
  })

  t.test('a bad --exp: exit 64', async (t) => {
    const { code, stderr } = await run(['token', '--key', 'demo-key.json', '--exp', 'soon'], dir)
    t.equal(code, 64)
    t.match(stderr, /--exp must be a number of seconds/)
  })

  t.test('a key file that holds no key: exit 1', async (t) => {
    const { code, stdout, stderr } = await run(['token', '--key', 'broken-key.json'], dir)
    t.equal(code, 1)
    t.equal(stdout, '')
    t.match(stderr, /^scopegate: /)
  })
})

t.test('explain --cert: the certificate-binding step with the certificate given', async (t) => {
  const [cert] = makeCertificates('cli-client')
  if (cert === undefined) throw new Error('no certificate')
  const dir = t.testdir({
    'scopegate.yaml': CONFIG,
    'bound.json': JSON.stringify({ ...ALICE, cnf: { 'x5t#S256': cert.thumbprint } }),
    'client.pem': cert.pem,
    'not.pem': 'hello'
  })
  const explain = (extra: string[]): Promise<Result> =>
    run(['explain', '--config', 'scopegate.yaml', '--method', 'GET', '--path', '/todos/1', '--claims', 'bound.json', ...extra], dir)
  // The three runs at once: each is a whole node start-up, and this machine may be shared.
  const [bound, none, bad] = await Promise.all([explain(['--cert', 'client.pem']), explain([]), explain(['--cert', 'not.pem'])])
  t.equal(bound.code, 0, bound.stderr)
  t.match(bound.stdout, /^certificate pass \(token bound to a certificate, certificate presented\)$/m)
  t.equal(none.code, 2)
  t.match(none.stdout, /^certificate token bound to a certificate, no certificate: DENY 401 invalid_token \(certificate_missing\)/m)
  t.equal(bad.code, 1)
  t.match(bad.stderr, /not\.pem: not a PEM certificate/)
})
