/**
 * What a forward-auth answer tells an ingress's decision cache (docs/forward-auth.md, "Caching
 * decisions"): `forwardAuth.denialCache` compiled per route, and which denials may be kept, as tables.
 * The real-nginx side is test/forward-auth/nginx-decision-cache.test.ts.
 */
import t from 'tap'
import type { CompiledRoute } from '../../src/config/types.js'
import type { Deny } from '../../src/decision/decide.js'
import { denialCacheHint } from '../../src/http/forward-auth-answer.js'
import { ConfigError, type ConfigProblem } from '../../src/config/problems.js'
import { GatewayError, type Reason } from '../../src/shared/errors.js'
import type { VerifiedToken } from '../../src/token/verified-token.js'
import { compileTestConfig } from '../helpers/gateway.js'

type Obj = Record<string, unknown>

const config = (routes: Obj[]): Obj => ({
  issuers: [{ id: 'main', issuer: 'https://idp.example', jwksUri: 'https://idp.example/jwks.json', algorithms: ['ES256'], audiences: ['https://todo.api'] }],
  upstreams: { todo: { url: 'http://todo-api:3000' } },
  routes: routes.map((route, i) => ({ id: `r${i}`, match: { path: `/r${i}`, prefix: true }, upstream: 'todo', ...route }))
})

const routesOf = (routes: Obj[]): readonly CompiledRoute[] => compileTestConfig(config(routes)).routes

function problemsOf (routes: Obj[]): ConfigProblem[] {
  try {
    compileTestConfig(config(routes))
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems]
    throw err
  }
  return []
}

t.test('forwardAuth.denialCache: whole seconds up to 60, 5 s by default, 0 with cacheHints: false', async (t) => {
  const cases: Array<[forwardAuth: Obj | undefined, seconds: number]> = [
    [undefined, 5],
    [{}, 5],
    [{ denialCache: '0s' }, 0],
    [{ denialCache: '1s' }, 1],
    [{ denialCache: '1m' }, 60],
    [{ cacheHints: false }, 0],
    [{ cacheHints: false, denialCache: '30s' }, 0]
  ]
  const routes = routesOf(cases.map(([forwardAuth]) => forwardAuth === undefined ? {} : { forwardAuth }))
  cases.forEach(([forwardAuth, seconds], i) => t.equal(routes[i]?.denialCacheSeconds, seconds, JSON.stringify(forwardAuth ?? null)))

  t.match(problemsOf([{ forwardAuth: { denialCache: '1500ms' } }]), [{ path: 'routes[0].forwardAuth.denialCache', message: /whole number of seconds/ }])
  t.match(problemsOf([{ forwardAuth: { denialCache: '61s' } }]), [{ path: 'routes[0].forwardAuth.denialCache', message: /at most 60s/ }])
  t.match(problemsOf([{ forwardAuth: { denialCache: 'soon' } }]), [{ path: 'routes[0].forwardAuth.denialCache' }])
})

t.test('which denials may be kept, on a route that allows it', async (t) => {
  const [plain, withRequestCondition] = routesOf([
    {},
    { policy: { conditions: [{ claim: 'auth_time', maxAge: '1h' }] } }
  ])
  if (plain === undefined || withRequestCondition === undefined) throw new Error('routes not compiled')
  const denial = (reason: Reason, route: CompiledRoute | null = plain, token: VerifiedToken | null = null, error?: GatewayError): Deny =>
    ({ allowed: false, error: error ?? new GatewayError(401, 'invalid_token', reason, 'test'), route, path: '/r0', token, scopes: [] })
  const kept = { 'cache-control': 's-maxage=5, max-age=0', vary: 'authorization' }
  const noStore = { 'cache-control': 'no-store' }

  const cases: Array<[reason: Reason, expected: Obj]> = [
    ['token_missing', kept], ['authorization_malformed', kept], ['token_malformed', kept], ['token_signature_invalid', kept],
    ['token_expired', kept], ['token_issuer_unknown', kept], ['token_audience_invalid', kept], ['audience_denied', kept],
    ['client_denied', kept], ['scope_insufficient', kept], ['role_missing', kept], ['condition_failed', kept],
    ['token_not_yet_valid', noStore], ['token_issued_in_future', noStore], ['token_key_unknown', noStore],
    ['keys_unavailable', noStore], ['introspection_unavailable', noStore], ['token_inactive', noStore],
    ['network_denied', noStore], ['rate_limited', noStore], ['rate_limit_unavailable', noStore],
    ['authorization_duplicated', noStore], ['token_duplicated', noStore], ['dpop_proof_invalid', noStore],
    ['certificate_binding_mismatch', noStore], ['no_route', noStore], ['path_invalid', noStore], ['internal', noStore]
  ]
  for (const [reason, expected] of cases) t.same(denialCacheHint(denial(reason)), expected, reason)

  t.same(denialCacheHint(denial('token_missing', null)), noStore, 'no route: nothing to say how long')
  t.same(denialCacheHint(denial('condition_failed', withRequestCondition)), noStore, 'a condition that reads the request may pass next time')
  t.same(denialCacheHint(denial('token_missing', withRequestCondition)), kept, 'the same route, another reason: kept')
  const dpopError = new GatewayError(401, 'invalid_token', 'token_expired', 'test', { dpop: { algs: 'ES256' } })
  t.same(denialCacheHint(denial('token_expired', plain, null, dpopError)), noStore, 'a DPoP challenge: the proof took part')
  const bound = { jkt: 'thumbprint', x5t: null } as unknown as VerifiedToken
  t.same(denialCacheHint(denial('scope_insufficient', plain, bound)), noStore, 'a DPoP-bound token')
  const certBound = { jkt: null, x5t: 'thumbprint' } as unknown as VerifiedToken
  t.same(denialCacheHint(denial('scope_insufficient', plain, certBound)), noStore, 'a certificate-bound token')
})

t.test('routes whose denials are never kept', async (t) => {
  const routes = routesOf([
    { forwardAuth: { cacheHints: false } },
    { forwardAuth: { denialCache: '0s' } },
    { mode: 'audit' },
    { policy: { network: { allow: ['10.0.0.0/8'] } } },
    { policy: { network: { deny: ['10.0.0.0/8'] } } },
    { requireDpop: true },
    { cors: { origins: ['https://app.example'] } },
    { forwardAuth: { denialCache: '30s' } }
  ])
  const expected = ['no-store', 'no-store', 'no-store', 'no-store', 'no-store', 'no-store', 'no-store', 's-maxage=30, max-age=0']
  routes.forEach((route, i) => {
    const hint = denialCacheHint({ allowed: false, error: new GatewayError(401, 'unauthorized', 'token_missing', 'test'), route, path: '/', token: null, scopes: [] })
    t.equal(hint['cache-control'], expected[i], `route ${i}`)
  })
})
