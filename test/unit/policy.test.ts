import t from 'tap'
import type { CompiledIssuer, CompiledPolicy } from '../../src/config/types.js'
import { GatewayError } from '../../src/shared/errors.js'
import type { KeyEntry } from '../../src/keys/import-jwk.js'
import { applyPolicy, applyTokenPolicy, NETWORK_CHECKS, POLICY_CHECKS, TOKEN_CHECKS } from '../../src/policy/apply-policy.js'
import { checkAudience } from '../../src/policy/check-audience.js'
import { checkClient } from '../../src/policy/check-client.js'
import { checkIssuer } from '../../src/policy/check-issuer.js'
import { checkNetwork } from '../../src/policy/check-network.js'
import type { PolicyInput } from '../../src/policy/context.js'
import { narrowScopes } from '../../src/policy/narrow-scopes.js'
import { requireScopes } from '../../src/policy/require-scopes.js'
import { identityClaims } from '../../src/token/claims.js'
import { cacheKey, verifiedToken, type VerifiedToken } from '../../src/token/verified-token.js'
import { compileTestConfig } from '../helpers/gateway.js'

type Obj = Record<string, unknown>

const ISSUERS = [
  { id: 'auth0', issuer: 'https://tenant.example.com/', jwksUri: 'https://tenant.example.com/jwks', algorithms: ['RS256'], audiences: ['https://todo.api'] },
  { id: 'okta', issuer: 'https://okta.example.com', jwksUri: 'https://okta.example.com/jwks', algorithms: ['RS256'], audiences: ['https://todo.api'] }
]

/** The compiled policy of a route with this policy (and these defaults), built as a config file's would be. */
function policyOf (policy: Obj, defaults: Obj = {}): CompiledPolicy {
  const config = compileTestConfig({
    issuers: ISSUERS,
    upstreams: { todo: { url: 'http://todo-api:3000' } },
    defaults: { policy: defaults },
    routes: [{ id: 'r', match: { path: '/r' }, upstream: 'todo', policy }]
  })
  const route = config.routes[0]
  if (route === undefined) throw new Error('no route')
  return route.policy
}

const issuers = new Map<string, CompiledIssuer>(
  [...compileTestConfig({ issuers: ISSUERS, upstreams: { u: { url: 'http://u' } }, routes: [{ id: 'r', match: { path: '/' }, upstream: 'u' }] })
    .issuersById]
)

/** A verified token as the verifier would build it from these claims (no signature involved). */
function tokenOf (claims: Obj, issuerId = 'auth0'): VerifiedToken {
  const issuer = issuers.get(issuerId)
  if (issuer === undefined) throw new Error(`no issuer ${issuerId}`)
  const key = { kid: 'k1', key: undefined, algorithms: new Set(['RS256']) } as unknown as KeyEntry
  return verifiedToken(identityClaims(claims, issuer.claims), issuer, claims, 2_000_000_000, key, 0, cacheKey(JSON.stringify(claims)))
}

/** The denial a check throws (as `{status, code, reason}`), or 'pass'. */
function outcome (fn: () => unknown): 'pass' | { status: number, code: string, reason: string } {
  try {
    fn()
    return 'pass'
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err
    return { status: err.status, code: err.code, reason: err.reason }
  }
}

const input = (policy: CompiledPolicy, token: VerifiedToken | null, clientIp = '10.1.2.3'): PolicyInput => ({ policy, token, clientIp })

const networkDenied = { status: 401, code: 'end_users_not_allowed', reason: 'network_denied' }

t.test('network: allow and deny lists, IPv4, IPv6 and IPv4-mapped addresses', async (t) => {
  const policy = policyOf({ network: { allow: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'], deny: ['10.9.0.0/16', '2001:db8:bad::/48'] } })
  const cases: Array<[ip: string, expected: 'pass' | 'deny']> = [
    ['10.1.2.3', 'pass'],
    ['10.255.255.255', 'pass'],
    ['192.0.2.7', 'pass'],
    ['192.0.2.8', 'deny'],
    ['11.0.0.1', 'deny'],
    ['10.9.0.1', 'deny'],
    ['::ffff:10.1.2.3', 'pass'],
    ['::ffff:10.9.0.1', 'deny'],
    ['::ffff:11.0.0.1', 'deny'],
    ['2001:db8::1', 'pass'],
    ['2001:DB8:0:0::1', 'pass'],
    ['2001:db8:bad::1', 'deny'],
    ['2001:db9::1', 'deny'],
    ['::1', 'deny'],
    ['', 'deny'],
    ['not-an-ip', 'deny']
  ]
  for (const [ip, expected] of cases) {
    t.same(outcome(() => checkNetwork(input(policy, null, ip))), expected === 'pass' ? 'pass' : networkDenied, ip || '(unknown address)')
  }
})

t.test('network: a deny list alone lets everything else in; no lists let everyone in', async (t) => {
  const denyOnly = policyOf({ network: { deny: ['203.0.113.0/24', '::/0'] } })
  const cases: Array<[ip: string, expected: 'pass' | 'deny']> = [
    ['203.0.113.9', 'deny'],
    ['::ffff:203.0.113.9', 'deny'],
    ['198.51.100.1', 'pass'],
    ['::ffff:198.51.100.1', 'pass'],
    ['2001:db8::1', 'deny'],
    ['', 'pass']
  ]
  for (const [ip, expected] of cases) {
    t.same(outcome(() => checkNetwork(input(denyOnly, null, ip))), expected === 'pass' ? 'pass' : networkDenied, `deny-only: ${ip}`)
  }
  t.equal(outcome(() => checkNetwork(input(policyOf({}), null, '203.0.113.9'))), 'pass', 'no lists')
  t.equal(outcome(() => checkNetwork(input(policyOf({ network: { allow: [], deny: [] } }), null, '203.0.113.9'))), 'pass', 'empty lists')
})

t.test('network: denyStatus.policy sets the status', async (t) => {
  const policy = policyOf({ network: { allow: ['10.0.0.0/8'] }, denyStatus: { policy: 403 } })
  t.same(outcome(() => checkNetwork(input(policy, null, '11.0.0.1'))), { ...networkDenied, status: 403 })
})

t.test('audience: allow, deny and denyMissing, with aud as a string, an array, an empty array or missing', async (t) => {
  const denied = (reason: string) => ({ status: 401, code: 'end_users_not_allowed', reason })
  const invalid = { status: 401, code: 'invalid_token', reason: 'token_audience_invalid' }
  const seed = policyOf({ audience: { deny: ['http://todoapi2.api'], denyMissing: true } })
  const allowList = policyOf({ audience: { allow: ['https://todo.api', 'https://other.api'], deny: ['http://todoapi2.api'] } })
  const byDefault = policyOf({})
  const lenient = policyOf({ audience: { denyMissing: false } })
  const allowListLenient = policyOf({ audience: { allow: ['https://todo.api'], denyMissing: false } })
  type Expected = 'pass' | ReturnType<typeof denied> | typeof invalid
  const cases: Array<[name: string, policy: CompiledPolicy, aud: unknown, expected: Expected]> = [
    ['seed rule: the denied API', seed, 'http://todoapi2.api', denied('audience_denied')],
    ['seed rule: the denied API among others', seed, ['https://todo.api', 'http://todoapi2.api'], denied('audience_denied')],
    ['seed rule: missing aud', seed, undefined, denied('audience_missing')],
    ['seed rule: empty aud array is missing', seed, [], denied('audience_missing')],
    ['seed rule: another API', seed, 'https://todo.api', 'pass'],
    ['seed rule: array of other APIs', seed, ['https://todo.api', 'https://x.api'], 'pass'],
    ['allow list: listed', allowList, 'https://other.api', 'pass'],
    ['allow list: one of several listed', allowList, ['https://nope.api', 'https://todo.api'], 'pass'],
    ['allow list: not listed is not a token for this route', allowList, 'https://nope.api', invalid],
    ['allow list: deny is checked before allow', allowList, ['https://todo.api', 'http://todoapi2.api'], denied('audience_denied')],
    ['allow list, denyMissing by default: missing is denied', allowList, undefined, denied('audience_missing')],
    ['allow list, denyMissing by default: empty array is denied', allowList, [], denied('audience_missing')],
    ['allow list with denyMissing off: missing never satisfies the allow list', allowListLenient, undefined, invalid],
    ['no audience policy: anything', byDefault, 'https://whatever', 'pass'],
    ['no audience policy: missing is denied by default', byDefault, undefined, denied('audience_missing')],
    ['denyMissing off: missing passes', lenient, undefined, 'pass']
  ]
  for (const [name, policy, aud, expected] of cases) {
    const claims = aud === undefined ? {} : { aud }
    t.same(outcome(() => checkAudience(input(policy, tokenOf(claims)))), expected, name)
  }
  t.same(outcome(() => checkAudience(input(policyOf({ audience: { denyMissing: true }, denyStatus: { policy: 403 } }), tokenOf({})))),
    { ...denied('audience_missing'), status: 403 }, 'denyStatus.policy sets the status')
})

t.test('client: allow, deny and denyMissing, with the client id from client_id or azp', async (t) => {
  const denied = { status: 401, code: 'end_users_not_allowed', reason: 'client_denied' }
  const missing = { status: 401, code: 'end_users_not_allowed', reason: 'client_missing' }
  const seed = policyOf({ clients: { deny: ['CLIENT_ID'] } })
  const allowList = policyOf({ clients: { allow: ['todo-web', 'todo-cli'], deny: ['todo-cli'] } })
  const requireClient = policyOf({ clients: { denyMissing: true } })
  const cases: Array<[name: string, policy: CompiledPolicy, claims: Obj, expected: 'pass' | typeof denied | typeof missing]> = [
    ['seed rule: the denied application', seed, { client_id: 'CLIENT_ID' }, denied],
    ['seed rule: the denied application as azp', seed, { azp: 'CLIENT_ID' }, denied],
    ['seed rule: client_id wins over azp', seed, { client_id: 'todo-web', azp: 'CLIENT_ID' }, 'pass'],
    ['seed rule: another application', seed, { client_id: 'todo-web' }, 'pass'],
    ['seed rule: no client id', seed, {}, 'pass'],
    ['allow list: listed', allowList, { client_id: 'todo-web' }, 'pass'],
    ['allow list: not listed', allowList, { client_id: 'other' }, denied],
    ['allow list: deny beats allow', allowList, { client_id: 'todo-cli' }, denied],
    ['allow list: no client id cannot be on it', allowList, {}, missing],
    ['denyMissing: no client id', requireClient, {}, missing],
    ['denyMissing: a null client_id is missing', requireClient, { client_id: null }, missing],
    ['denyMissing: an empty client_id is missing', requireClient, { client_id: '' }, missing],
    ['denyMissing: any client id', requireClient, { azp: 'x' }, 'pass'],
    ['denyMissing: a numeric client id is not converted (the verifier refuses it before)', requireClient, { client_id: 1234 }, missing],
    ['case matters', seed, { client_id: 'client_id' }, 'pass']
  ]
  for (const [name, policy, claims, expected] of cases) {
    t.same(outcome(() => checkClient(input(policy, tokenOf(claims)))), expected, name)
  }
})

t.test('issuer: a route may accept only some of the configured issuers', async (t) => {
  const onlyAuth0 = policyOf({ issuers: ['auth0'] })
  t.equal(outcome(() => checkIssuer(input(onlyAuth0, tokenOf({}, 'auth0')))), 'pass')
  t.same(outcome(() => checkIssuer(input(onlyAuth0, tokenOf({}, 'okta')))),
    { status: 401, code: 'invalid_token', reason: 'token_issuer_not_allowed' })
  t.equal(outcome(() => checkIssuer(input(policyOf({}), tokenOf({}, 'okta')))), 'pass', 'no list: every configured issuer')
  t.equal(outcome(() => checkIssuer(input(policyOf({ issuers: ['auth0', 'okta'] }), tokenOf({}, 'okta')))), 'pass')
})

t.test('narrowing: effective = token scopes ∩ roles grant ∩ clients grant, in the token\'s order', async (t) => {
  const roles = { admin: ['*'], editor: ['read:todos', 'write:todos'], user: ['read:todos'], auditor: ['read:audit', 'read:todos'] }
  const clients = { 'todo-cli': ['read:todos', 'read:audit'], 'todo-web': ['*'], 'todo-empty': [] }
  const both = policyOf({ grants: { roles, clients } })
  const rolesOnly = policyOf({ grants: { roles } })
  const clientsOnly = policyOf({ grants: { clients } })
  const none = policyOf({})
  const asks = 'write:todos read:todos read:audit delete:todos'
  const cases: Array<[name: string, policy: CompiledPolicy, claims: Obj, expected: string[]]> = [
    ['no grant maps: the token\'s scopes as they are', none, { scope: asks, roles: ['user'] }, ['write:todos', 'read:todos', 'read:audit', 'delete:todos']],
    ['roles: a user keeps only read', rolesOnly, { scope: asks, roles: ['user'] }, ['read:todos']],
    ['roles: an editor keeps read and write, in the token\'s order', rolesOnly, { scope: asks, roles: ['editor'] }, ['write:todos', 'read:todos']],
    ['roles: grants of several roles add up', rolesOnly, { scope: asks, roles: ['user', 'auditor'] }, ['read:todos', 'read:audit']],
    ['roles: a scope granted by two roles appears once', rolesOnly, { scope: asks, roles: ['editor', 'user', 'auditor'] }, ['write:todos', 'read:todos', 'read:audit']],
    ['roles: "*" grants every requested scope', rolesOnly, { scope: asks, roles: ['admin'] }, ['write:todos', 'read:todos', 'read:audit', 'delete:todos']],
    ['roles: "*" on any one role grants everything', rolesOnly, { scope: asks, roles: ['user', 'admin'] }, ['write:todos', 'read:todos', 'read:audit', 'delete:todos']],
    ['roles: "*" grants only what the token asks for', rolesOnly, { scope: 'read:todos', roles: ['admin'] }, ['read:todos']],
    ['roles: a role the map does not name grants nothing', rolesOnly, { scope: asks, roles: ['intern'] }, []],
    ['roles: no roles at all grants nothing', rolesOnly, { scope: asks }, []],
    ['roles: a grant never adds a scope the token lacks', rolesOnly, { scope: 'read:todos', roles: ['editor'] }, ['read:todos']],
    ['roles: roles as a comma-separated string', rolesOnly, { scope: asks, roles: 'user,auditor' }, ['read:todos', 'read:audit']],
    ['clients: per-application grant', clientsOnly, { scope: asks, client_id: 'todo-cli' }, ['read:todos', 'read:audit']],
    ['clients: "*"', clientsOnly, { scope: asks, client_id: 'todo-web' }, ['write:todos', 'read:todos', 'read:audit', 'delete:todos']],
    ['clients: an empty grant gives nothing', clientsOnly, { scope: asks, client_id: 'todo-empty' }, []],
    ['clients: an unnamed client is granted nothing', clientsOnly, { scope: asks, client_id: 'stranger' }, []],
    ['clients: no client id is granted nothing', clientsOnly, { scope: asks }, []],
    ['clients: the roles are irrelevant when only clients are mapped', clientsOnly, { scope: asks, client_id: 'todo-cli', roles: ['admin'] }, ['read:todos', 'read:audit']],
    ['both: intersection of the two grants', both, { scope: asks, roles: ['editor'], client_id: 'todo-cli' }, ['read:todos']],
    ['both: role "*" leaves the client grant', both, { scope: asks, roles: ['admin'], client_id: 'todo-cli' }, ['read:todos', 'read:audit']],
    ['both: client "*" leaves the role grant', both, { scope: asks, roles: ['editor'], client_id: 'todo-web' }, ['write:todos', 'read:todos']],
    ['both: "*" on both leaves the token', both, { scope: asks, roles: ['admin'], client_id: 'todo-web' }, ['write:todos', 'read:todos', 'read:audit', 'delete:todos']],
    ['both: an unnamed role empties it, whatever the client', both, { scope: asks, roles: ['intern'], client_id: 'todo-web' }, []],
    ['both: an unnamed client empties it, whatever the role', both, { scope: asks, roles: ['admin'], client_id: 'stranger' }, []],
    ['a token asking for nothing gets nothing', both, { roles: ['admin'], client_id: 'todo-web' }, []],
    ['duplicate scopes in the token are kept once', rolesOnly, { scope: 'read:todos write:todos read:todos', roles: ['editor'] }, ['read:todos', 'write:todos']],
    ['scope as an array', rolesOnly, { scope: ['read:todos', 'write:todos', 'read:todos'], roles: ['editor'] }, ['read:todos', 'write:todos']]
  ]
  for (const [name, policy, claims, expected] of cases) {
    t.same(narrowScopes(input(policy, tokenOf(claims))), expected, name)
  }
  t.same(narrowScopes(input(both, null)), [], 'anonymous: nothing')
})

t.test('narrowing uses grants from defaults, and a route\'s own grants replace them', async (t) => {
  const defaults = { grants: { roles: { user: ['read:todos'] } } }
  const token = tokenOf({ scope: 'read:todos write:todos', roles: ['user'], client_id: 'todo-cli' })
  t.same(narrowScopes(input(policyOf({}, defaults), token)), ['read:todos'])
  t.same(narrowScopes(input(policyOf({ grants: { clients: { 'todo-cli': ['write:todos'] } } }, defaults), token)), ['write:todos'],
    'the route\'s grants section replaces the default one whole')
})

t.test('required scopes: all or any, against the effective scopes, with denyStatus.scope', async (t) => {
  const insufficient = (status: number) => ({ status, code: 'insufficient_scope', reason: 'scope_insufficient' })
  const all = policyOf({ scopes: { require: ['read:todos', 'write:todos'] } })
  const any = policyOf({ scopes: { require: ['write:todos', 'delete:todos'], match: 'any' } })
  const as401 = policyOf({ scopes: { require: ['read:todos'] }, denyStatus: { scope: 401 } })
  const nothing = policyOf({ scopes: { require: [] } })
  const cases: Array<[name: string, policy: CompiledPolicy, effective: string[], expected: 'pass' | ReturnType<typeof insufficient>]> = [
    ['all: has both', all, ['write:todos', 'read:todos', 'x'], 'pass'],
    ['all: has one', all, ['read:todos'], insufficient(403)],
    ['all: has none', all, [], insufficient(403)],
    ['any: has one', any, ['delete:todos'], 'pass'],
    ['any: has the other', any, ['read:todos', 'write:todos'], 'pass'],
    ['any: has neither', any, ['read:todos'], insufficient(403)],
    ['denyStatus.scope 401', as401, [], insufficient(401)],
    ['nothing required', nothing, [], 'pass'],
    ['scopes are compared exactly', all, ['READ:TODOS', 'write:todos'], insufficient(403)]
  ]
  for (const [name, policy, effective, expected] of cases) {
    t.same(outcome(() => requireScopes(policy, effective)), expected, name)
  }
})

t.test('insufficient_scope names what the route requires in its scope parameter', async (t) => {
  try {
    requireScopes(policyOf({ scopes: { require: ['read:todos', 'write:todos'] } }), ['read:todos'])
    t.fail('should deny')
  } catch (err) {
    t.equal((err as GatewayError).scope, 'read:todos write:todos')
    t.match((err as GatewayError).detail, /has \[read:todos\]/)
  }
})

t.test('applyPolicy: required scopes are checked against the narrowed scopes, never the raw token', async (t) => {
  const policy = policyOf({ grants: { roles: { user: ['read:todos'] } }, scopes: { require: ['write:todos'] } })
  const token = tokenOf({ aud: 'https://todo.api', scope: 'read:todos write:todos', roles: ['user'] })
  t.same(outcome(() => applyPolicy(input(policy, token))), { status: 403, code: 'insufficient_scope', reason: 'scope_insufficient' })
  const editor = tokenOf({ aud: 'https://todo.api', scope: 'write:todos read:todos', roles: ['user'] })
  const granted = policyOf({ grants: { roles: { user: ['read:todos', 'write:todos'] } }, scopes: { require: ['write:todos'] } })
  t.same(applyPolicy(input(granted, editor)), ['write:todos', 'read:todos'], 'returns the effective scopes in the token\'s order')
})

t.test('applyPolicy runs the checks in the contract\'s order: the first failing one answers', async (t) => {
  const policy = policyOf({
    issuers: ['auth0'],
    network: { allow: ['10.0.0.0/8'] },
    audience: { deny: ['http://todoapi2.api'], denyMissing: true },
    clients: { deny: ['CLIENT_ID'] },
    grants: { roles: { user: ['read:todos'] } },
    scopes: { require: ['write:todos'] },
    denyStatus: { policy: 403, scope: 401 }
  })
  const bad = { aud: 'http://todoapi2.api', client_id: 'CLIENT_ID', scope: 'write:todos', roles: ['user'] }
  const cases: Array<[name: string, ip: string, claims: Obj, issuer: string, reason: string]> = [
    ['network beats everything', '11.0.0.1', bad, 'okta', 'network_denied'],
    ['then issuer', '10.0.0.1', bad, 'okta', 'token_issuer_not_allowed'],
    ['then audience', '10.0.0.1', bad, 'auth0', 'audience_denied'],
    ['then client', '10.0.0.1', { ...bad, aud: 'https://todo.api' }, 'auth0', 'client_denied'],
    ['then required scopes after narrowing', '10.0.0.1', { ...bad, aud: 'https://todo.api', client_id: 'todo-web' }, 'auth0', 'scope_insufficient']
  ]
  for (const [name, ip, claims, issuer, reason] of cases) {
    const result = outcome(() => applyPolicy(input(policy, tokenOf(claims, issuer), ip)))
    t.equal(result === 'pass' ? 'pass' : result.reason, reason, name)
  }
  t.same(POLICY_CHECKS.map(([name]) => name), ['network', 'issuer', 'audience', 'client', 'roles'], 'the named order explain shows')
  t.same(NETWORK_CHECKS.map(([name]) => name), ['network'], 'what depends on the request')
  t.same(TOKEN_CHECKS.map(([name]) => name), ['issuer', 'audience', 'client', 'roles'], 'what depends on the route and token alone')
  const fromOutside = outcome(() => applyTokenPolicy(input(policy, tokenOf(bad, 'okta'), '11.0.0.1')))
  t.equal(fromOutside === 'pass' ? 'pass' : fromOutside.reason, 'token_issuer_not_allowed', 'applyTokenPolicy runs no network check')
})

t.test('applyPolicy: an anonymous request passes the token checks but not the network check', async (t) => {
  const policy = policyOf({
    issuers: ['auth0'],
    network: { allow: ['10.0.0.0/8'] },
    audience: { denyMissing: true, allow: ['https://todo.api'] },
    clients: { denyMissing: true, allow: ['todo-web'] },
    grants: { roles: { user: ['read:todos'] } }
  })
  t.same(applyPolicy(input(policy, null, '10.0.0.1')), [], 'anonymous: no scopes')
  t.same(outcome(() => applyPolicy(input(policy, null, '11.0.0.1'))), networkDenied)
})
