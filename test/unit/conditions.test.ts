/**
 * Policy conditions and roles (src/policy/claim-condition.ts, cel-condition.ts, check-roles.ts,
 * config/compile-conditions.ts): each declarative operator and CEL against claims and requests, what is
 * remembered per token and what is not, and every bad condition as a `validate` problem with its path.
 */
import t from 'tap'
import type { ConfigProblem } from '../../src/config/problems.js'
import type { CompiledCondition, CompiledPolicy, RequestFacts } from '../../src/config/types.js'
import { compileCel } from '../../src/policy/cel-condition.js'
import { expectConfigProblems } from '../helpers/config-problems.js'
import { compileTestConfig } from '../helpers/gateway.js'

type Obj = Record<string, unknown>

const NOW_MS = 1_800_000_000_000
const request: RequestFacts = { method: 'GET', host: 'a.example.com', path: '/api/x', clientIp: '10.1.2.3', nowMs: NOW_MS }

function configWith (policy: Obj, route: Obj = {}): Obj {
  return {
    issuers: [{ id: 'auth0', issuer: 'https://tenant.example.com/', jwksUri: 'https://tenant.example.com/jwks.json', algorithms: ['RS256'], audiences: ['https://todo.api'] }],
    upstreams: { todo: { url: 'http://todo-api:3000' } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo', policy, ...route }]
  }
}

function policyOf (policy: Obj): CompiledPolicy {
  return (compileTestConfig(configWith(policy)).routes[0] as { policy: CompiledPolicy }).policy
}

function problemsOf (policy: Obj, route: Obj = {}): ConfigProblem[] {
  return expectConfigProblems(() => compileTestConfig(configWith(policy, route)))
}

/** The one condition a policy compiles to, wherever it was filed. */
function only (policy: CompiledPolicy): CompiledCondition {
  const all = [...policy.conditions.token, ...policy.conditions.request]
  if (all.length !== 1) throw new Error(`expected one condition, got ${all.length}`)
  return all[0] as CompiledCondition
}

const claims = {
  sub: 'auth0|42',
  email_verified: true,
  tenant: 'acme',
  groups: ['dev', 'ops'],
  acr: 'silver',
  loa: 2,
  loa_text: '3',
  auth_time: NOW_MS / 1000 - 600,
  org: { id: 'o-1', plan: 'pro' },
  'https://example.com/plan': 'pro'
}

t.test('declarative conditions: each operator, held and not held', async (t) => {
  const cases: Array<[name: string, condition: Obj, pass: boolean, perRequest: boolean]> = [
    ['equals true', { claim: 'email_verified', equals: true }, true, false],
    ['equals a string', { claim: 'tenant', equals: 'globex' }, false, false],
    ['equals never coerces', { claim: 'loa', equals: '2' }, false, false],
    ['in a list', { claim: 'tenant', in: ['acme', 'globex'] }, true, false],
    ['not in a list', { claim: 'tenant', in: ['globex'] }, false, false],
    ['in on a list claim is false', { claim: 'groups', in: ['ops'] }, false, false],
    ['contains', { claim: 'groups', contains: 'ops' }, true, false],
    ['does not contain', { claim: 'groups', contains: 'admin' }, false, false],
    ['contains on a string claim fails', { claim: 'tenant', contains: 'acme' }, false, false],
    ['atLeast a number', { claim: 'loa', atLeast: 2 }, true, false],
    ['atLeast a number, below', { claim: 'loa', atLeast: 3 }, false, false],
    ['atLeast reads a numeric string', { claim: 'loa_text', atLeast: 3 }, true, false],
    ['atLeast a level', { claim: 'acr', atLeast: 'silver', levels: ['bronze', 'silver', 'gold'] }, true, false],
    ['atLeast a level, below', { claim: 'acr', atLeast: 'gold', levels: ['bronze', 'silver', 'gold'] }, false, false],
    ['atLeast a level the claim is not among', { claim: 'acr', atLeast: 'x', levels: ['x', 'y'] }, false, false],
    ['maxAge within', { claim: 'auth_time', maxAge: '15m' }, true, true],
    ['maxAge past', { claim: 'auth_time', maxAge: '5m' }, false, true],
    ['maxAge of an absent claim', { claim: 'iat', maxAge: '5m' }, false, true],
    ['exists', { claim: 'tenant', exists: true }, true, false],
    ['exists: false', { claim: 'tenant', exists: false }, false, false],
    ['absent claim is not there', { claim: 'nope', exists: false }, true, false],
    ['a nested claim', { claim: ['org', 'plan'], equals: 'pro' }, true, false],
    ['a claim name with dots and slashes', { claim: 'https://example.com/plan', equals: 'pro' }, true, false],
    ['an absent claim fails', { claim: 'nope', equals: 'x' }, false, false]
  ]
  for (const [name, condition, pass, perRequest] of cases) {
    const compiled = only(policyOf({ conditions: [condition] }))
    t.equal(compiled.perRequest, perRequest, `${name}: ${perRequest ? 'per request' : 'remembered per token'}`)
    t.equal(compiled.evaluate(claims, perRequest ? request : null).pass, pass, name)
  }
})

t.test('CEL conditions: claims, route, request and clock; request-reading ones are never remembered', async (t) => {
  const cases: Array<[cel: string, pass: boolean, perRequest: boolean]> = [
    ['claims.email_verified == true', true, false],
    ['claims.tenant in ["acme", "globex"]', true, false],
    ['"ops" in claims.groups', true, false],
    ['claims.loa >= 2', true, false],
    ['claims.org.plan == "pro" && route == "todos"', true, false],
    ['has(claims.nope) && claims.nope == 1', false, false],
    ['now - claims.auth_time < 900', true, true],
    ['now - claims.auth_time < 300', false, true],
    ['host.endsWith(".example.com") && method == "GET"', true, true],
    ['path.startsWith("/admin")', false, true],
    ['clientIp == "10.1.2.3"', true, true],
    ['claims.groups.exists(g, g == "ops") || claims.tenant == "globex"', true, false]
  ]
  for (const [cel, pass, perRequest] of cases) {
    const compiled = only(policyOf({ conditions: [{ cel }] }))
    t.equal(compiled.perRequest, perRequest, `${cel}: ${perRequest ? 'per request' : 'remembered per token'}`)
    t.equal(compiled.evaluate(claims, perRequest ? request : null).pass, pass, cel)
  }
})

t.test('a CEL runtime error fails the condition with a reason, never a throw', async (t) => {
  const compiled = only(policyOf({ conditions: [{ cel: 'claims.nope == "x"' }] }))
  const result = compiled.evaluate(claims, null)
  t.equal(result.pass, false)
  t.match(result.error, /nope/, 'the reason names the missing claim')
  t.notMatch(result.error, /\n/, 'one line for the log')
  const typed = only(policyOf({ conditions: [{ cel: 'claims.tenant > 3' }] })).evaluate(claims, null)
  t.equal(typed.pass, false, 'a claim of another type')
  t.type(typed.error, 'string')
})

t.test('the value each condition judged is reported, for explain', async (t) => {
  t.equal(only(policyOf({ conditions: [{ claim: 'tenant', in: ['x'] }] })).evaluate(claims, null).value, 'acme')
  t.equal(only(policyOf({ conditions: [{ cel: 'claims.loa + 1 == 3' }] })).evaluate(claims, null).value, true)
})

t.test('bad conditions are validate problems with their paths', async (t) => {
  const cases: Array<[name: string, condition: Obj, path: string, message: RegExp]> = [
    ['a parse error', { cel: 'claims.tenant ==' }, 'routes[0].policy.conditions[0].cel', /./],
    ['an unknown variable', { cel: 'claim.tenant == "acme"' }, 'routes[0].policy.conditions[0].cel', /claim/],
    ['not a bool', { cel: 'claims.tenant' }, 'routes[0].policy.conditions[0].cel', /must be a bool expression/],
    ['an int is not a bool', { cel: '1 + 2' }, 'routes[0].policy.conditions[0].cel', /must be a bool expression/],
    ['too deep', { cel: `${'('.repeat(40)}true${')'.repeat(40)}` }, 'routes[0].policy.conditions[0].cel', /./],
    ['cel with a claim', { cel: 'true', claim: 'x' }, 'routes[0].policy.conditions[0]', /cel stands alone/],
    ['nothing to check', { exists: true }, 'routes[0].policy.conditions[0]', /needs cel, or claim/],
    ['a claim without an operator', { claim: 'tenant' }, 'routes[0].policy.conditions[0]', /needs exactly one of/],
    ['two operators', { claim: 'tenant', equals: 'a', in: ['b'] }, 'routes[0].policy.conditions[0]', /has equals, in/],
    ['levels without atLeast', { claim: 'acr', equals: 'x', levels: ['x'] }, 'routes[0].policy.conditions[0].levels', /only applies with atLeast/],
    ['a level not in levels', { claim: 'acr', atLeast: 'platinum', levels: ['silver', 'gold'] }, 'routes[0].policy.conditions[0].atLeast', /must be one of levels/],
    ['a word without levels', { claim: 'acr', atLeast: 'gold' }, 'routes[0].policy.conditions[0].atLeast', /must be a number/],
    ['a registered claim of the wrong type', { claim: 'email_verified', equals: 'true' }, 'routes[0].policy.conditions[0].claim', /is a boolean/],
    ['contains on a registered string claim', { claim: 'sub', contains: 'x' }, 'routes[0].policy.conditions[0].claim', /never a list/],
    ['maxAge on a string claim', { claim: 'acr', maxAge: '5m' }, 'routes[0].policy.conditions[0].claim', /not a NumericDate/]
  ]
  for (const [name, condition, path, message] of cases) {
    const problems = problemsOf({ conditions: [condition] })
    t.match(problems, [{ path, message }], name)
  }
  t.match(problemsOf({ conditions: [{ claim: 'tenant', maxAge: 'soon' }] }), [{ path: 'routes[0].policy.conditions[0].maxAge' }], 'a bad duration')
  t.match(problemsOf({ conditions: [{ cel: 'x'.repeat(1025) }] }), [{ path: 'routes[0].policy.conditions[0].cel' }], 'an expression too long')
  t.match(problemsOf({ roles: { require: ['ops'] } }, { auth: 'none' }), [{ path: 'routes[0].policy', message: /auth: none/ }], 'roles on auth: none')
  t.match(problemsOf({ conditions: [{ cel: 'true' }] }, { auth: 'none' }), [{ path: 'routes[0].policy', message: /auth: none/ }], 'conditions on auth: none')
})

t.test('CEL compiled directly: problems are returned, not thrown', async (t) => {
  t.match(compileCel('claims.', 'r'), { problem: /./ })
  t.match(compileCel('unknown_var == 1', 'r'), { problem: /unknown_var/ })
})

t.test('conditions keep the claims in the token cache; routes without them do not', async (t) => {
  t.equal(compileTestConfig(configWith({ conditions: [{ claim: 'tenant', equals: 'acme' }] })).keepClaims, true)
  t.equal(compileTestConfig(configWith({ roles: { require: ['ops'] } })).keepClaims, false)
})

t.test('the seed rules rewritten as conditions (docs/policy.md) hold exactly when the seed forms pass', async (t) => {
  const audience = only(policyOf({ conditions: [{ cel: 'has(claims.aud) && (type(claims.aud) == list ? !("http://todoapi2.api" in claims.aud) : claims.aud != "http://todoapi2.api")' }] }))
  const audiences: Array<[aud: unknown, pass: boolean]> = [
    ['https://todo.api', true],
    [['https://todo.api'], true],
    ['http://todoapi2.api', false],
    [['https://todo.api', 'http://todoapi2.api'], false],
    [undefined, false]
  ]
  for (const [aud, pass] of audiences) t.equal(audience.evaluate({ aud }, null).pass, pass, `aud ${JSON.stringify(aud)}`)

  const client = only(policyOf({ conditions: [{ cel: '(has(claims.client_id) ? claims.client_id : claims.azp) != "CLIENT_ID"' }] }))
  const clients: Array<[claims: Record<string, unknown>, pass: boolean]> = [
    [{ client_id: 'todo-web' }, true],
    [{ client_id: 'CLIENT_ID' }, false],
    [{ azp: 'CLIENT_ID' }, false],
    [{ azp: 'todo-cli' }, true]
  ]
  for (const [given, pass] of clients) t.equal(client.evaluate(given, null).pass, pass, JSON.stringify(given))
})

t.test('a claim named __proto__ is a claim, never a prototype the other claims are read through', async (t) => {
  const payload = JSON.parse('{"sub":"mallory","__proto__":{"tenant":"acme","email_verified":true}}') as Record<string, unknown>
  t.equal(only(policyOf({ conditions: [{ cel: 'claims.tenant == "acme"' }] })).evaluate(payload, null).pass, false, 'CEL')
  t.equal(only(policyOf({ conditions: [{ cel: 'has(claims.tenant)' }] })).evaluate(payload, null).pass, false, 'CEL has()')
  t.equal(only(policyOf({ conditions: [{ claim: 'tenant', equals: 'acme' }] })).evaluate(payload, null).pass, false, 'declarative')
  t.equal(only(policyOf({ conditions: [{ claim: ['__proto__', 'tenant'], equals: 'acme' }] })).evaluate(payload, null).pass, true, 'named as a path, it is read as a claim')
})
