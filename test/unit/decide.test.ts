import t from 'tap'
import { PendingDecision, decide, decideKnown, decidePending, type Decision, type DecisionInput } from '../../src/decision/decide.js'
import { buildEngine, type Engine } from '../../src/decision/engine.js'
import { GatewayError, deny } from '../../src/shared/errors.js'
import type { KeyEntry } from '../../src/keys/import-jwk.js'
import { identityClaims } from '../../src/token/claims.js'
import { cacheKey, verifiedToken, type VerifiedToken } from '../../src/token/verified-token.js'
import { TokenMiss, type TokenLookup, type Verifier } from '../../src/token/verify-token.js'
import { compileTestConfig } from '../helpers/gateway.js'

const config = compileTestConfig({
  issuers: [{ id: 'auth0', issuer: 'https://tenant.example.com/', jwksUri: 'https://tenant.example.com/jwks', algorithms: ['RS256'], audiences: ['https://todo.api'] }],
  upstreams: { todo: { url: 'http://todo-api:3000' } },
  defaults: { policy: { audience: { deny: ['http://todoapi2.api'], denyMissing: true }, clients: { deny: ['CLIENT_ID'] } } },
  routes: [
    {
      id: 'todos',
      match: { path: '/todos', prefix: true, methods: ['GET'] },
      upstream: 'todo',
      policy: { grants: { roles: { user: ['read:todos'], editor: ['read:todos', 'write:todos'] } }, scopes: { require: ['read:todos'] } }
    },
    { id: 'admin', match: { path: '/admin', prefix: true }, upstream: 'todo', policy: { network: { allow: ['10.0.0.0/8'] } } },
    { id: 'feed', match: { path: '/feed' }, upstream: 'todo', auth: 'optional' },
    { id: 'health', match: { path: '/health' }, upstream: 'todo', auth: 'none', policy: { network: { deny: ['203.0.113.0/24'] } } },
    {
      id: 'shadow',
      match: { path: '/shadow', prefix: true },
      upstream: 'todo',
      mode: 'audit',
      policy: { grants: { roles: { user: ['read:todos'], editor: ['read:todos', 'write:todos'] } }, scopes: { require: ['write:todos'] } }
    }
  ]
})

const issuer = config.issuersById.get('auth0')
function tokenOf (claims: Record<string, unknown>): VerifiedToken {
  if (issuer === undefined) throw new Error('no issuer')
  const key = { kid: 'k', key: undefined, algorithms: new Set(['RS256']) } as unknown as KeyEntry
  return verifiedToken(identityClaims(claims, issuer.claims), issuer, claims, 2_000_000_000, key, 0, cacheKey(JSON.stringify(claims)))
}

const alice = tokenOf({ sub: 'alice', client_id: 'todo-web', aud: 'https://todo.api', scope: 'write:todos read:todos', roles: ['user'] })

/**
 * An engine over the test config whose verifier answers with `result` and records each call: a token as a
 * fresh verification (a miss, then a promise), a GatewayError as the failure cache does (returned at
 * once), any other error as a failed verification (a miss, then a rejected promise).
 */
function engineWith (result: VerifiedToken | Error): { engine: Engine, verified: string[] } {
  const verified: string[] = []
  const verifier: Verifier = {
    lookup: (bearer: string): TokenLookup => {
      verified.push(bearer)
      return result instanceof GatewayError ? result : new TokenMiss(bearer, cacheKey(bearer))
    },
    verifyMiss: async (): Promise<VerifiedToken> => {
      if (result instanceof Error) throw result
      return result
    }
  }
  return { engine: { ...buildEngine(config, null), verifier }, verified }
}

/** An engine whose verifier's caches know `token`: every lookup is a hit. */
function engineKnowing (token: VerifiedToken): Engine {
  const verifier: Verifier = {
    lookup: () => token,
    verifyMiss: async () => { throw new Error('a known token is never verified afresh') }
  }
  return { ...buildEngine(config, null), verifier }
}

function request (over: Partial<DecisionInput> = {}): DecisionInput {
  return { method: 'GET', target: '/todos/1', authorization: ['Bearer abc.def.ghi'], clientIp: '10.1.2.3', ...over }
}

/** The parts of a decision a test names: allowed, status, code, route, path. */
function summary (decision: Decision): Record<string, unknown> {
  if (decision.allowed) {
    return { allowed: true, route: decision.route.id, path: decision.path, audit: decision.audit?.code ?? null }
  }
  return { allowed: false, status: decision.error.status, code: decision.error.code, route: decision.route?.id ?? null, path: decision.path }
}

t.test('a target that normalization rejects is a 400 before any route is looked up', async (t) => {
  const { engine, verified } = engineWith(alice)
  for (const target of ['/todos/..%2F..%2Fadmin', '/todos/%00', '/../etc', 'todos']) {
    const decision = await decide(engine, request({ target }))
    t.same(summary(decision), { allowed: false, status: 400, code: 'invalid_request', route: null, path: null }, target)
    t.equal(decision.allowed ? null : decision.error.reason, 'path_invalid')
  }
  t.same(verified, [], 'no token verified')
})

t.test('no route is a 404 no_route, with the normalized path', async (t) => {
  const { engine, verified } = engineWith(alice)
  const cases: Array<[method: string, target: string, path: string]> = [
    ['GET', '/nothing/here', '/nothing/here'],
    ['GET', '/todosx', '/todosx'],
    ['POST', '/todos/1', '/todos/1'],
    ['GET', '//feed/', '/feed/']
  ]
  for (const [method, target, path] of cases) {
    t.same(summary(await decide(engine, request({ method, target }))),
      { allowed: false, status: 404, code: 'no_route', route: null, path }, `${method} ${target}`)
  }
  t.same(verified, [])
})

t.test('the normalized path is the one matched and returned; the query passes untouched', async (t) => {
  const { engine } = engineWith(alice)
  const decision = await decide(engine, request({ target: '/admin/../todos//1/./?q=a%2Fb&x' }))
  t.same(summary(decision), { allowed: true, route: 'todos', path: '/todos/1/', audit: null })
  t.equal(decision.allowed ? decision.query : null, '?q=a%2Fb&x')
  const plain = await decide(engine, request())
  t.equal(plain.allowed ? plain.query : null, '')
})

t.test('auth: required', async (t) => {
  const cases: Array<[name: string, authorization: string[], result: VerifiedToken | Error, expected: Record<string, unknown>]> = [
    ['no Authorization header', [], alice, { allowed: false, status: 401, code: 'unauthorized', route: 'todos', path: '/todos/1' }],
    ['another scheme counts as no token', ['Basic dXNlcjpwYXNz'], alice, { allowed: false, status: 401, code: 'unauthorized', route: 'todos', path: '/todos/1' }],
    ['a malformed header', ['Bearer'], alice, { allowed: false, status: 400, code: 'invalid_request', route: 'todos', path: '/todos/1' }],
    ['two headers', ['Bearer a', 'Bearer b'], alice, { allowed: false, status: 400, code: 'invalid_request', route: 'todos', path: '/todos/1' }],
    ['the verifier refuses the token', ['Bearer abc'], deny.invalidToken('token_expired', 'the token has expired'),
      { allowed: false, status: 401, code: 'invalid_token', route: 'todos', path: '/todos/1' }],
    ['keys unavailable', ['Bearer abc'], deny.keysUnavailable(30),
      { allowed: false, status: 503, code: 'temporarily_unavailable', route: 'todos', path: '/todos/1' }],
    ['an unexpected verifier failure is a generic 500', ['Bearer abc'], new Error('boom'),
      { allowed: false, status: 500, code: 'server_error', route: 'todos', path: '/todos/1' }],
    ['a policy denial', ['Bearer abc'], tokenOf({ ...alice.claims, aud: 'http://todoapi2.api' }),
      { allowed: false, status: 401, code: 'end_users_not_allowed', route: 'todos', path: '/todos/1' }],
    ['narrowed scopes lack what is required', ['Bearer abc'], tokenOf({ ...alice.claims, roles: ['intern'] }),
      { allowed: false, status: 403, code: 'insufficient_scope', route: 'todos', path: '/todos/1' }],
    ['allowed', ['Bearer abc'], alice, { allowed: true, route: 'todos', path: '/todos/1', audit: null }]
  ]
  for (const [name, authorization, result, expected] of cases) {
    const { engine } = engineWith(result)
    t.same(summary(await decide(engine, request({ authorization }))), expected, name)
  }
})

t.test('an allowed request carries the token, the narrowed scopes and the identity headers', async (t) => {
  const { engine, verified } = engineWith(alice)
  const decision = await decide(engine, request({ authorization: ['Bearer abc.def.ghi'] }))
  t.same(verified, ['abc.def.ghi'], 'the bearer token is what is verified')
  if (!decision.allowed) throw new Error('expected allow')
  t.equal(decision.token, alice)
  t.same(decision.scopes, ['read:todos'], 'write:todos narrowed away by the user role')
  t.same(decision.headers, {
    'x-auth-route': 'todos',
    'x-auth-subject': 'alice',
    'x-auth-client-id': 'todo-web',
    'x-auth-scopes': 'read:todos',
    'x-auth-roles': 'user',
    'x-auth-issuer': 'https://tenant.example.com/'
  })
})

t.test('a denied decision says which route and token it was about, with no scopes', async (t) => {
  const { engine } = engineWith(tokenOf({ ...alice.claims, roles: ['intern'] }))
  const decision = await decide(engine, request())
  t.equal(decision.allowed, false)
  t.equal(decision.route?.id, 'todos')
  t.equal(decision.token?.subject, 'alice')
  t.same(decision.scopes, [])
})

t.test('the network rule is checked against the client address', async (t) => {
  const { engine } = engineWith(alice)
  t.same(summary(await decide(engine, request({ target: '/admin', clientIp: '10.9.9.9' }))), { allowed: true, route: 'admin', path: '/admin', audit: null })
  t.same(summary(await decide(engine, request({ target: '/admin', clientIp: '203.0.113.9' }))),
    { allowed: false, status: 401, code: 'end_users_not_allowed', route: 'admin', path: '/admin' })
})

t.test('auth: optional lets anonymous requests through with no identity, but still checks a token that is sent', async (t) => {
  const anonymous = engineWith(alice)
  const decision = await decide(anonymous.engine, request({ target: '/feed', authorization: [] }))
  t.same(summary(decision), { allowed: true, route: 'feed', path: '/feed', audit: null })
  t.same(anonymous.verified, [])
  if (decision.allowed) {
    t.equal(decision.token, null)
    t.same(decision.scopes, [])
    t.same(decision.headers, { 'x-auth-route': 'feed' })
  }

  const withToken = engineWith(alice)
  const identified = await decide(withToken.engine, request({ target: '/feed' }))
  t.equal(identified.allowed && identified.headers['x-auth-subject'], 'alice')

  const bad = engineWith(deny.invalidToken('token_signature_invalid', 'the token signature is invalid'))
  t.same(summary(await decide(bad.engine, request({ target: '/feed' }))),
    { allowed: false, status: 401, code: 'invalid_token', route: 'feed', path: '/feed' }, 'a bad token is not treated as no token')
  t.same(summary(await decide(bad.engine, request({ target: '/feed', authorization: ['Bearer'] }))),
    { allowed: false, status: 400, code: 'invalid_request', route: 'feed', path: '/feed' })
})

t.test('auth: none never looks at the Authorization header, but the network rule still applies', async (t) => {
  const { engine, verified } = engineWith(deny.invalidToken('token_expired', 'x'))
  for (const authorization of [[], ['Bearer expired'], ['Bearer'], ['a', 'b']]) {
    const decision = await decide(engine, request({ target: '/health', authorization }))
    t.same(summary(decision), { allowed: true, route: 'health', path: '/health', audit: null }, JSON.stringify(authorization))
    t.same(decision.allowed ? decision.headers : null, { 'x-auth-route': 'health' })
  }
  t.same(verified, [])
  t.same(summary(await decide(engine, request({ target: '/health', clientIp: '203.0.113.5' }))),
    { allowed: false, status: 401, code: 'end_users_not_allowed', route: 'health', path: '/health' })
})

t.test('audit mode forwards what enforce mode would deny, and says what that denial was', async (t) => {
  t.test('no token', async (t) => {
    const { engine } = engineWith(alice)
    const decision = await decide(engine, request({ target: '/shadow', authorization: [] }))
    t.same(summary(decision), { allowed: true, route: 'shadow', path: '/shadow', audit: 'unauthorized' })
    t.same(decision.allowed ? decision.headers : null, { 'x-auth-route': 'shadow' })
  })

  t.test('a refused token: the upstream sees no identity', async (t) => {
    const { engine } = engineWith(deny.invalidToken('token_expired', 'the token has expired'))
    const decision = await decide(engine, request({ target: '/shadow/x' }))
    t.same(summary(decision), { allowed: true, route: 'shadow', path: '/shadow/x', audit: 'invalid_token' })
    if (decision.allowed) {
      t.equal(decision.token, null)
      t.same(decision.headers, { 'x-auth-route': 'shadow' })
    }
  })

  t.test('a policy denial: the upstream sees the proven identity with the narrowed scopes', async (t) => {
    const { engine } = engineWith(alice)
    const decision = await decide(engine, request({ target: '/shadow' }))
    t.same(summary(decision), { allowed: true, route: 'shadow', path: '/shadow', audit: 'insufficient_scope' })
    if (decision.allowed) {
      t.equal(decision.audit?.status, 403)
      t.same(decision.scopes, ['read:todos'])
      t.equal(decision.headers['x-auth-subject'], 'alice')
      t.equal(decision.headers['x-auth-scopes'], 'read:todos')
    }
  })

  t.test('a request enforce mode allows has no audit error', async (t) => {
    const { engine } = engineWith(tokenOf({ ...alice.claims, roles: ['editor'] }))
    const decision = await decide(engine, request({ target: '/shadow' }))
    t.same(summary(decision), { allowed: true, route: 'shadow', path: '/shadow', audit: null })
    t.same(decision.scopes, ['write:todos', 'read:todos'])
  })

  t.test('routing failures are not audited away', async (t) => {
    const { engine } = engineWith(alice)
    t.same(summary(await decide(engine, request({ target: '/shadow/%2F' }))),
      { allowed: false, status: 400, code: 'invalid_request', route: null, path: null })
  })
})

t.test('a token the caches know is decided at once, and its policy outcome is reused only where it holds', async (t) => {
  const bob = tokenOf({ sub: 'bob', client_id: 'todo-web', aud: 'https://todo.api', scope: 'write:todos read:todos', roles: ['editor'] })
  const engine = engineKnowing(bob)
  const sync = (input: DecisionInput, on: Engine = engine): Decision => {
    const decision = decideKnown(on, input)
    if (decision instanceof PendingDecision) throw new Error('expected a decision without verification')
    return decision
  }
  const first = sync(request())
  t.same(first.scopes, ['write:todos', 'read:todos'])
  const again = sync(request())
  t.equal(again.allowed && again.headers, first.allowed && first.headers, 'a second request on the route reuses the outcome')
  const reloaded = sync(request(), engineKnowing(bob))
  t.not(reloaded.allowed && reloaded.headers, first.allowed && first.headers, 'another engine (a reload) computes its own')
  t.same(reloaded.allowed && reloaded.headers, first.allowed && first.headers, '… to the same effect under the same config')

  // Another route: its own policy, not the kept one; the network check runs on every request.
  t.same(summary(sync(request({ target: '/admin', clientIp: '10.0.0.1' }))), { allowed: true, route: 'admin', path: '/admin', audit: null })
  t.same(summary(sync(request({ target: '/admin', clientIp: '192.0.2.1' }))),
    { allowed: false, status: 401, code: 'end_users_not_allowed', route: 'admin', path: '/admin' })
  t.same(summary(sync(request({ target: '/admin', clientIp: '10.0.0.1' }))), { allowed: true, route: 'admin', path: '/admin', audit: null })
  const back = sync(request())
  t.same(back.allowed && back.headers['x-auth-route'], 'todos')
  t.same(back.scopes, ['write:todos', 'read:todos'])

  // A denial is kept too, and stays a denial; in audit mode it is forwarded with the denial noted.
  const intern = tokenOf({ ...alice.claims, roles: ['intern'] })
  const denying = engineKnowing(intern)
  for (let i = 0; i < 2; i++) {
    t.same(summary(await decide(denying, request())), { allowed: false, status: 403, code: 'insufficient_scope', route: 'todos', path: '/todos/1' }, `request ${i + 1}`)
  }
  const audited = await decide(denying, request({ target: '/shadow' }))
  t.same(summary(audited), { allowed: true, route: 'shadow', path: '/shadow', audit: 'insufficient_scope' })
})

t.test('decideKnown answers without a promise; only a token to verify afresh is pending, and decidePending never rejects', async (t) => {
  const known = decideKnown(engineKnowing(alice), request())
  t.notOk(known instanceof Promise, 'a known token: no promise')
  t.match(known, { allowed: true }, 'and decided')
  const refused = decideKnown(engineWith(deny.invalidToken('token_expired', 'the token has expired')).engine, request())
  t.match(refused, { allowed: false, error: { reason: 'token_expired' } }, 'a known failure: a Deny at once, nothing thrown')
  t.match(decideKnown(engineWith(alice).engine, request({ target: '/../x' })), { allowed: false, error: { reason: 'path_invalid' } }, 'a bad target: a Deny at once')

  const fresh = engineWith(alice)
  const pending = decideKnown(fresh.engine, request())
  t.ok(pending instanceof PendingDecision, 'an unseen token: pending')
  if (!(pending instanceof PendingDecision)) return
  t.match(await decidePending(pending), { allowed: true, route: { id: 'todos' }, scopes: ['read:todos'] })

  const failing = decideKnown(engineWith(new TypeError('a bug in the verifier')).engine, request())
  if (!(failing instanceof PendingDecision)) throw new Error('expected a pending decision')
  const settled = await decidePending(failing).then((d) => d, () => null)
  t.match(settled, { allowed: false, error: { status: 500, code: 'server_error' } }, 'a failure that is not a GatewayError: a Deny, not a rejection')
})
