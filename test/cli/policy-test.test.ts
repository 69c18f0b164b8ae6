/**
 * `scopegate test` and `scopegate diff` as a CI job runs them: through the CLI, with config and cases
 * files in a fresh directory, reports read back by real parsers (tap-parser for TAP, fast-xml-parser for
 * JUnit), and the exit codes a pipeline branches on.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { XMLParser } from 'fast-xml-parser'
import t, { type Test } from 'tap'
import { Parser } from 'tap-parser'
import { run } from '../helpers/cli.js'
import { makeKey, mintToken } from '../helpers/jwks-server.js'

t.setTimeout(300_000)
t.jobs = 4

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const DEMO_ENV = { SCOPEGATE_DEMO_ISSUER: 'http://127.0.0.1:8081', SCOPEGATE_DEMO_UPSTREAM: 'http://127.0.0.1:8082' }

const CONFIG = `
issuers:
  - id: corp
    issuer: https://idp.example.com/
    jwksUri: https://idp.example.com/jwks.json
    algorithms: [RS256]
    audiences: [https://api.example.com]
    claims: { roles: roles }
upstreams:
  api: { url: "http://api.internal:3000" }
routes:
  - id: orders
    match: { path: /orders, prefix: true, methods: [GET] }
    upstream: api
    policy:
      grants: { roles: { clerk: [orders:read], manager: [orders:read, orders:approve] } }
      scopes: { require: [orders:read] }
  - id: approvals
    match: { path: /approvals, prefix: true, methods: [POST] }
    upstream: api
    policy:
      clients: { deny: [legacy-app] }
      grants: { roles: { manager: [orders:approve] } }
      scopes: { require: [orders:approve] }
`

const CLERK = { sub: 'c1', client_id: 'shop', aud: 'https://api.example.com', scope: 'orders:read orders:approve', roles: ['clerk'] }

const CASES = `
cases:
  - name: a clerk reads orders, and approve is narrowed away
    request: { path: /orders/1, claims: ${JSON.stringify(CLERK)} }
    expect: { decision: allow, route: orders, scopes: [orders:read], headers: { x-auth-subject: c1, x-auth-roles: clerk } }
  - name: a clerk cannot approve
    request: { method: POST, path: /approvals, claims: ${JSON.stringify(CLERK)} }
    expect: { decision: deny, status: 403, error: insufficient_scope }
`

async function workdir (t: Test, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-cases-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text)
  return dir
}

/** The test points and the plan of a TAP stream, as a TAP consumer reads them. */
interface TapFailure { name?: string, diag?: unknown }

async function parseTap (text: string): Promise<{ ok: boolean, count: number, pass: number, fail: number, failures: TapFailure[] }> {
  return new Promise((resolve) => {
    const parser = new Parser((summary) => {
      resolve({ ok: summary.ok, count: summary.count, pass: summary.pass, fail: summary.fail, failures: summary.failures as TapFailure[] })
    })
    parser.end(text)
  })
}

t.test('the demo config passes its own seed-rule cases (npm test runs them)', async (t) => {
  const result = await run(['test', '--config', 'config/demo.yaml', 'config/demo.cases.yaml'], ROOT, DEMO_ENV)
  t.equal(result.code, 0, result.stdout + result.stderr)
  const count = (await readFile(join(ROOT, 'config/demo.cases.yaml'), 'utf8')).match(/^ {2}- name:/gm)?.length ?? 0
  t.ok(count >= 16, 'every seed rule has cases')
  t.match(result.stdout, new RegExp(`^${count} passed, 0 failed$`, 'm'))
  t.match(result.stdout, /stand-in keys/, 'the run says the real keys were not used')
  t.notMatch(result.stdout, /FAIL/)
})

t.test('a passing cases file: exit 0, one line per case', async (t) => {
  const dir = await workdir(t, { 'gw.yaml': CONFIG, 'cases.yaml': CASES })
  const result = await run(['test', '--config', 'gw.yaml', 'cases.yaml'], dir)
  t.equal(result.code, 0, result.stderr)
  t.match(result.stdout, /^ok {4}a clerk reads orders, and approve is narrowed away$/m)
  t.match(result.stdout, /^ok {4}a clerk cannot approve$/m)
  t.match(result.stdout, /^2 passed, 0 failed$/m)
})

t.test('request.host reaches the engine: host routes and conditions are tested like the rest', async (t) => {
  const config = `${CONFIG}
  - id: eu-orders
    match: { path: /orders, prefix: true, methods: [GET], host: "*.eu.example.com" }
    upstream: api
    policy:
      conditions:
        - { claim: region, equals: eu }
        - cel: 'host.startsWith(claims.tenant + ".")'
`
  const eu = { ...CLERK, region: 'eu', tenant: 'acme' }
  const cases = `
cases:
  - name: the eu host goes to its own route
    request: { path: /orders/1, host: "acme.eu.example.com:443", claims: ${JSON.stringify(eu)} }
    expect: { decision: allow, route: eu-orders }
  - name: another tenant's host fails the CEL condition
    request: { path: /orders/1, host: globex.eu.example.com, claims: ${JSON.stringify(eu)} }
    expect: { decision: deny, status: 403, error: insufficient_scope, route: eu-orders }
  - name: a token from another region fails the declarative condition
    request: { path: /orders/1, host: acme.eu.example.com, claims: ${JSON.stringify({ ...eu, region: 'us' })} }
    expect: { decision: deny, status: 403, route: eu-orders }
  - name: without a host, the route for every host
    request: { path: /orders/1, claims: ${JSON.stringify(eu)} }
    expect: { decision: allow, route: orders }
  - name: the Host header works as well
    request: { path: /orders/1, headers: { host: acme.eu.example.com }, claims: ${JSON.stringify(eu)} }
    expect: { decision: allow, route: eu-orders }
`
  const dir = await workdir(t, { 'gw.yaml': config, 'cases.yaml': cases })
  const result = await run(['test', '--config', 'gw.yaml', 'cases.yaml'], dir)
  t.equal(result.code, 0, result.stdout + result.stderr)
  t.match(result.stdout, /^5 passed, 0 failed$/m)

  const wrong = cases.replace('expect: { decision: allow, route: eu-orders }', 'expect: { decision: allow, route: orders }')
  const failing = await workdir(t, { 'gw.yaml': config, 'cases.yaml': wrong })
  const failed = await run(['test', '--config', 'gw.yaml', 'cases.yaml'], failing)
  t.equal(failed.code, 1, 'a case expecting the host to change nothing fails')
  t.match(failed.stdout, /route: expected "orders", got "eu-orders"/)
})

t.test('a failing case: exit 1, every difference and the explain steps', async (t) => {
  const wider = CONFIG.replace('clerk: [orders:read]', 'clerk: [orders:read, orders:approve]')
  const dir = await workdir(t, { 'gw.yaml': wider, 'cases.yaml': CASES })
  const result = await run(['test', '--config', 'gw.yaml', 'cases.yaml'], dir)
  t.equal(result.code, 1)
  t.match(result.stdout, /^FAIL {2}a clerk reads orders, and approve is narrowed away {2}\(cases\.yaml#cases\[0\]\)$/m)
  t.match(result.stdout, /scopes: expected \["orders:read"\], got \["orders:read","orders:approve"\]/)
  t.match(result.stdout, /explain:\n\s+request\s+GET \/orders\/1/)
  t.match(result.stdout, /narrow\s+\[orders:read orders:approve\] -> \[orders:read orders:approve\]/)
  t.match(result.stdout, /^1 passed, 1 failed$/m)
})

t.test('malformed cases files: exit 2, every problem with its path', async (t) => {
  const dir = await workdir(t, {
    'gw.yaml': CONFIG,
    'bad.yaml': `
cases:
  - name: typo in an expectation
    request: { path: /orders, claims: {} }
    expect: { decison: allow }
  - name: wrong types
    request: { path: /orders, method: 12 }
    expect: { status: "403", scopes: read }
  - name: two credentials
    request: { path: /orders, claims: {}, token: abc }
    expect: { decision: deny }
  - request: { path: /orders }
    expect: { decision: deny }
`,
    'syntax.yaml': 'cases: [\n',
    'empty-expect.yaml': 'cases:\n  - { name: x, request: { path: / }, expect: {} }\n'
  })
  const bad = await run(['test', '--config', 'gw.yaml', 'bad.yaml'], dir)
  t.equal(bad.code, 2)
  t.equal(bad.stdout, '', 'nothing is reported as run')
  t.match(bad.stderr, /bad\.yaml: invalid cases file/)
  t.match(bad.stderr, /^cases\[0\]\.expect: unknown key "decison"$/m)
  t.match(bad.stderr, /^cases\[1\]\.request\.method: must be string$/m)
  t.match(bad.stderr, /^cases\[1\]\.expect\.status: must be integer$/m)
  t.match(bad.stderr, /^cases\[1\]\.expect\.scopes: must be array$/m)
  t.match(bad.stderr, /^cases\[2\]\.request: give either claims or token, not both$/m)
  t.match(bad.stderr, /^cases\[3\]: must have required property 'name'$/m)

  const syntax = await run(['test', '--config', 'gw.yaml', 'syntax.yaml'], dir)
  t.equal(syntax.code, 2)
  t.match(syntax.stderr, /syntax\.yaml: invalid cases file\nYAML: /)
  const empty = await run(['test', '--config', 'gw.yaml', 'empty-expect.yaml'], dir)
  t.equal(empty.code, 2, 'an expectation that checks nothing is refused')
  t.match(empty.stderr, /cases\[0\]\.expect: must NOT have fewer than 1 properties/)
  const missing = await run(['test', '--config', 'gw.yaml', 'nope.yaml'], dir)
  t.equal(missing.code, 2)
  t.match(missing.stderr, /nope\.yaml: invalid cases file\ncannot read: ENOENT/)
  const badConfig = await run(['test', '--config', 'cases.yaml', 'bad.yaml'], dir)
  t.equal(badConfig.code, 2)
  t.match(badConfig.stderr, /cases\.yaml: invalid config/)
  const usage = await run(['test', '--config', 'gw.yaml'], dir)
  t.equal(usage.code, 2)
  t.match(usage.stderr, /^usage: scopegate test/)
  const reporter = await run(['test', '--config', 'gw.yaml', '--reporter', 'xml', 'bad.yaml'], dir)
  t.equal(reporter.code, 2)
})

t.test('--reporter tap is read by a TAP parser', async (t) => {
  const wider = CONFIG.replace('clerk: [orders:read]', 'clerk: [orders:read, orders:approve]')
  const dir = await workdir(t, { 'gw.yaml': CONFIG, 'wider.yaml': wider, 'cases.yaml': CASES })
  const passing = await run(['test', '--config', 'gw.yaml', '--reporter', 'tap', 'cases.yaml'], dir)
  t.equal(passing.code, 0)
  const good = await parseTap(passing.stdout)
  t.same({ ok: good.ok, count: good.count, pass: good.pass, fail: good.fail }, { ok: true, count: 2, pass: 2, fail: 0 })

  const failing = await run(['test', '--config', 'wider.yaml', '--reporter', 'tap', 'cases.yaml'], dir)
  t.equal(failing.code, 1)
  const bad = await parseTap(failing.stdout)
  t.same({ ok: bad.ok, count: bad.count, pass: bad.pass, fail: bad.fail }, { ok: false, count: 2, pass: 1, fail: 1 })
  const [failure] = bad.failures
  t.equal(failure?.name, 'a clerk reads orders, and approve is narrowed away')
  const diag = failure?.diag as { at: string, mismatches: string[], explain: string[] }
  t.equal(diag.at, 'cases.yaml#cases[0]')
  t.same(diag.mismatches, ['scopes: expected ["orders:read"], got ["orders:read","orders:approve"]'])
  t.ok(diag.explain.some((line) => line.startsWith('decision  ALLOW')), 'the explain steps travel in the YAML block')
})

t.test('--reporter junit is read by an XML parser', async (t) => {
  const wider = CONFIG.replace('clerk: [orders:read]', 'clerk: [orders:read, orders:approve]')
  const dir = await workdir(t, { 'wider.yaml': wider, 'cases.yaml': CASES })
  const result = await run(['test', '--config', 'wider.yaml', '--reporter', 'junit', 'cases.yaml'], dir)
  t.equal(result.code, 1)
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(result.stdout) as {
    testsuites: { tests: string, failures: string, testsuite: { name: string, tests: string, failures: string, testcase: Array<{ name: string, failure?: { message: string, '#text': string } }> } }
  }
  t.equal(doc.testsuites.tests, '2')
  t.equal(doc.testsuites.failures, '1')
  const suite = doc.testsuites.testsuite
  t.equal(suite.name, 'cases.yaml')
  t.same(suite.testcase.map((c) => [c.name, c.failure === undefined]), [
    ['a clerk reads orders, and approve is narrowed away', false],
    ['a clerk cannot approve', true]
  ])
  const failure = suite.testcase[0]?.failure
  t.equal(failure?.message, 'scopes: expected ["orders:read"], got ["orders:read","orders:approve"]')
  t.match(failure?.['#text'] ?? '', /explain:\nrequest\s+GET \/orders\/1/)
})

t.test('real tokens are verified against the keys the cases file names', async (t) => {
  const key = await makeKey('RS256')
  const other = await makeKey('RS256')
  const good = await mintToken(key, { ...CLERK, iss: 'https://idp.example.com/' })
  const forged = await mintToken(other, { ...CLERK, iss: 'https://idp.example.com/' }, { header: { kid: key.kid } })
  const cases = `
keys: { corp: corp.jwks.json }
cases:
  - name: a real clerk token
    request: { path: /orders, token: ${good} }
    expect: { decision: allow, scopes: [orders:read] }
  - name: a token signed by another key under a known kid
    request: { path: /orders, token: ${forged} }
    expect: { decision: deny, status: 401, error: invalid_token }
`
  const dir = await workdir(t, { 'gw.yaml': CONFIG, 'cases.yaml': cases, 'corp.jwks.json': JSON.stringify({ keys: [key.publicJwk] }) })
  const result = await run(['test', '--config', 'gw.yaml', 'cases.yaml'], dir)
  t.equal(result.code, 0, result.stdout)
  t.match(result.stdout, /^2 passed, 0 failed$/m)
  t.notMatch(result.stdout + result.stderr, good, 'the token is never printed')

  const unknownIssuer = await workdir(t, { 'gw.yaml': CONFIG, 'cases.yaml': cases.replace('corp:', 'nobody:'), 'corp.jwks.json': '{"keys":[]}' })
  const refused = await run(['test', '--config', 'gw.yaml', 'cases.yaml'], unknownIssuer)
  t.equal(refused.code, 2)
  t.match(refused.stderr, /keys\.nobody: no issuer with id "nobody"/)

  const noKeys = await workdir(t, { 'gw.yaml': CONFIG, 'cases.yaml': cases.replace(/^keys:.*$/m, '') })
  const unverifiable = await run(['test', '--config', 'gw.yaml', 'cases.yaml'], noKeys)
  t.equal(unverifiable.code, 1, 'without keys the real token cannot be allowed')
  t.match(unverifiable.stdout, /error: expected "invalid_token", got "temporarily_unavailable"|status: expected 401, got 503/)
  t.match(unverifiable.stdout, /no keys given for issuer\(s\) corp/)
})

t.test('diff: widening exits 1, narrowing and no change exit 0', async (t) => {
  const wider = CONFIG.replace('clerk: [orders:read]', 'clerk: [orders:read, orders:approve]')
  const narrower = CONFIG.replace('grants: { roles: { manager: [orders:approve] } }', 'grants: { roles: { manager: [orders:read] } }')
  const dir = await workdir(t, { 'gw.yaml': CONFIG, 'wider.yaml': wider, 'narrower.yaml': narrower, 'cases.yaml': CASES })

  const widened = await run(['diff', '--from', 'gw.yaml', '--to', 'wider.yaml', 'cases.yaml'], dir)
  t.equal(widened.code, 1, widened.stdout + widened.stderr)
  t.match(widened.stdout, /^WIDENED {2}a clerk reads orders, and approve is narrowed away: scopes \+orders:approve$/m)
  t.match(widened.stdout, /^WIDENED {2}orders: GET \/orders with corp token with role clerk: scopes \+orders:approve$/m)
  t.notMatch(widened.stdout, /a clerk cannot approve/, 'the approvals route grants clerks nothing, before and after')
  t.match(widened.stdout, /requests compared: 2 widened, 0 narrowed, 0 changed$/m)

  const narrowed = await run(['diff', '--from', 'gw.yaml', '--to', 'narrower.yaml'], dir)
  t.equal(narrowed.code, 0, 'a change that only narrows access needs no second review')
  t.match(narrowed.stdout, /^NARROWED approvals: POST \/approvals with corp token with role manager: allow \[orders:approve\] -> 403 insufficient_scope$/m)
  t.notMatch(narrowed.stdout, /WIDENED/)

  const same = await run(['diff', '--from', 'gw.yaml', '--to', 'gw.yaml', 'cases.yaml'], dir)
  t.equal(same.code, 0)
  t.match(same.stdout, /^\d+ requests compared: 0 widened, 0 narrowed, 0 changed$/m)
  t.equal(same.stdout.trim().split('\n').length, 1, 'nothing else is listed')

  const broken = await run(['diff', '--from', 'gw.yaml'], dir)
  t.equal(broken.code, 2)
})

t.test('DPoP in cases: a bound token (cnf.jkt) as Bearer, and a Bearer token on a requireDpop route, are denied', async (t) => {
  const config = `${CONFIG}
  - id: payments
    match: { path: /payments, prefix: true }
    upstream: api
    requireDpop: true
`
  const cases = `
cases:
  - name: a DPoP-bound token sent as Bearer
    request: { path: /orders/1, claims: ${JSON.stringify({ ...CLERK, cnf: { jkt: 'bound-key-thumbprint' } })} }
    expect: { decision: deny, status: 401, error: invalid_token }
  - name: a Bearer token where DPoP is required
    request: { path: /payments, claims: ${JSON.stringify(CLERK)} }
    expect: { decision: deny, status: 401, error: invalid_token }
  - name: an unbound Bearer token elsewhere is still fine
    request: { path: /orders/1, claims: ${JSON.stringify(CLERK)} }
    expect: { decision: allow }
`
  const dir = await workdir(t, { 'gw.yaml': config, 'cases.yaml': cases })
  const result = await run(['test', '--config', 'gw.yaml', 'cases.yaml'], dir)
  t.equal(result.code, 0, result.stdout + result.stderr)
  t.match(result.stdout, /^3 passed, 0 failed$/m)
  const wrong = await workdir(t, { 'gw.yaml': config, 'cases.yaml': cases.replace('error: invalid_token', 'error: insufficient_scope') })
  t.equal((await run(['test', '--config', 'gw.yaml', 'cases.yaml'], wrong)).code, 1, 'and the wrong expectation fails')
})
