/**
 * Forward auth end to end with a real nginx: `auth_request` to scopegate's `/decisions` in front of an
 * echo upstream, identity headers copied with `auth_request_set` — the configuration of
 * docs/ingress-nginx.md, section "plain nginx". Each allow is checked for what the upstream received,
 * each denial for what the client saw and for the upstream having received nothing. A second and a
 * third server cache decisions, with the documented cache key and with a key that forgets the token.
 *
 * nginx must be installed (CI's `.ci/run` installs nginx-light): without it this test fails, it does
 * not skip.
 */
import t, { type Test } from 'tap'
import { type Received } from '../helpers/echo-upstream.js'
import { nginxAndGateway } from './nginx-and-gateway.js'
import { send, type TestResponse } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { ERROR_MAP, IDENTITY, authServer, scopegateUpstream } from '../../bench/nginx-auth-request-config.js'
import { freePort, startNginx } from './nginx-process.js'

const API = 'https://todo.api'

t.test('forward auth behind a real nginx (auth_request)', async (t) => {
  const started = await nginxAndGateway(t, API, {
    defaults: { policy: { audience: { denyMissing: true }, clients: { deny: ['CLIENT_ID'] } } },
    routes: [
      { id: 'todos-read', match: { path: '/todos', prefix: true, methods: ['GET'] }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } } },
      { id: 'public', match: { path: '/public', prefix: true }, upstream: 'todo', auth: 'optional' }
    ]
  })
  if (started === null) return
  const { nginx, key, jwks, echo, gw } = started

  const [plain, cached, weak] = [await freePort(), await freePort(), await freePort()]
  const cacheLines = (key: string): string => `proxy_cache scopegate_decisions;\n      proxy_cache_key "${key}";`
  const dir = t.testdir({})
  const running = await startNginx(nginx, dir, [
    `  proxy_cache_path ${dir}/decisions keys_zone=scopegate_decisions:1m;`,
    ERROR_MAP,
    scopegateUpstream(gw.adminUrl, echo.url),
    authServer(plain),
    authServer(cached, cacheLines('$http_authorization$request_method$request_uri')),
    authServer(weak, cacheLines('$request_method$request_uri'))
  ].join('\n'), plain)
  t.teardown(() => running.stop())
  const through = (port: number): string => `http://127.0.0.1:${port}`

  const token = (claims: Record<string, unknown> = {}): Promise<string> => mintToken(key, {
    iss: jwks.issuer, aud: API, sub: 'alice', client_id: 'todo-web', scope: 'read:todos write:todos', roles: ['editor'], ...claims
  })
  const alice = await token()
  const bob = await token({ sub: 'bob', roles: ['viewer'], scope: 'read:todos' })

  /** The request the upstream received for this call, or undefined when it received none. */
  const upstreamSaw = async (port: number, target: string, request: Parameters<typeof send>[2] = {}): Promise<{ res: TestResponse, seen: Received | undefined }> => {
    const before = echo.received.length
    const res = await send(through(port), target, request)
    const seen = echo.received.slice(before)
    if (seen.length > 1) throw new Error(`the upstream received ${seen.length} requests for one call`)
    return { res, seen: seen[0] }
  }
  const count = (received: Received, name: string): number => received.rawHeaders.filter((_, i, all) => i % 2 === 0 && all[i]?.toLowerCase() === name).length

  t.test('allow: the upstream receives scopegate\'s identity headers', async (t) => {
    const { res, seen } = await upstreamSaw(plain, '/todos/1?fields=title', { headers: { authorization: `Bearer ${alice}` } })
    t.equal(res.status, 200)
    t.equal(seen?.url, '/todos/1?fields=title', 'nginx forwards the request it asked about')
    t.equal(seen?.headers['x-auth-subject'], 'alice')
    t.equal(seen?.headers['x-auth-client-id'], 'todo-web')
    t.equal(seen?.headers['x-auth-scopes'], 'read:todos write:todos')
    t.equal(seen?.headers['x-auth-roles'], 'editor')
    t.equal(seen?.headers['x-auth-issuer'], jwks.issuer)
    t.equal(seen?.headers['x-auth-route'], 'todos-read')
    t.equal(seen?.headers.authorization, `Bearer ${alice}`, 'the token travels on as received')
    t.match(gw.decisions().at(-1), { method: 'GET', path: '/todos/1', decision: 'allow', sub: 'alice' })
  })

  t.test('a client forging x-auth-* headers: the upstream sees only scopegate\'s values', async (t) => {
    const forged = { 'x-auth-subject': 'root', 'X-Auth-Scopes': 'admin', 'x-auth-roles': 'admin', 'X-AUTH-ROUTE': 'admin', 'x-auth-client-id': 'CLIENT_ID', 'x-auth-issuer': 'https://evil' }
    const { res, seen } = await upstreamSaw(plain, '/todos/1', { headers: { authorization: `Bearer ${bob}`, ...forged } })
    t.equal(res.status, 200)
    t.equal(seen?.headers['x-auth-subject'], 'bob')
    t.equal(seen?.headers['x-auth-scopes'], 'read:todos')
    t.equal(seen?.headers['x-auth-roles'], 'viewer')
    t.equal(seen?.headers['x-auth-route'], 'todos-read')
    t.equal(seen?.headers['x-auth-client-id'], 'todo-web')
    t.equal(seen?.headers['x-auth-issuer'], jwks.issuer)
    for (const name of IDENTITY) t.equal(count(seen as Received, name), 1, `one ${name}`)

    // Anonymous on an optional route: no identity at all, and the forged copies are gone too.
    const anonymous = await upstreamSaw(plain, '/public/page', { headers: forged })
    t.equal(anonymous.res.status, 200)
    t.equal(anonymous.seen?.headers['x-auth-route'], 'public')
    for (const name of IDENTITY.filter((n) => n !== 'x-auth-route')) t.equal(anonymous.seen?.headers[name], undefined, `no ${name}`)
  })

  t.test('a client naming another request in X-Original-*: nginx overwrites it', async (t) => {
    const { res, seen } = await upstreamSaw(plain, '/todos/1', { headers: { 'x-original-uri': '/public', 'x-original-method': 'GET' } })
    t.equal(res.status, 401, 'judged as /todos/1, which needs a token')
    t.equal(seen, undefined)
  })

  const denials: Array<[name: string, target: string, request: () => Promise<Parameters<typeof send>[2]>, status: 401 | 403, code: string]> = [
    ['no token', '/todos/1', async () => ({}), 401, 'unauthorized'],
    ['a token that does not verify', '/todos/1', async () => ({ headers: { authorization: `Bearer ${alice.slice(0, -4)}AAAA` } }), 401, 'invalid_token'],
    ['an expired token', '/todos/1', async () => ({ headers: { authorization: `Bearer ${await token({ exp: Math.floor(Date.now() / 1000) - 3600 })}` } }), 401, 'invalid_token'],
    ['a denied application', '/todos/1', async () => ({ headers: { authorization: `Bearer ${await token({ client_id: 'CLIENT_ID' })}` } }), 401, 'end_users_not_allowed'],
    ['a token without audience', '/todos/1', async () => ({ headers: { authorization: `Bearer ${await token({ aud: undefined })}` } }), 401, 'end_users_not_allowed'],
    ['a scope missing', '/todos/1', async () => ({ headers: { authorization: `Bearer ${await token({ scope: 'write:todos' })}` } }), 403, 'insufficient_scope'],
    ['no route', '/nowhere', async () => ({ headers: { authorization: `Bearer ${alice}` } }), 403, 'no_route'],
    ['no route for the method', '/todos/1', async () => ({ method: 'DELETE', headers: { authorization: `Bearer ${alice}` } }), 403, 'no_route'],
    ['no route, with a body', '/todos', async () => ({ method: 'POST', headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json' }, body: '{"title":"x"}' }), 403, 'no_route'],
    ['a path with no canonical form', '/todos/..%2Fadmin', async () => ({ headers: { authorization: `Bearer ${alice}` } }), 403, 'invalid_request']
  ]
  for (const [name, target, request, status, code] of denials) {
    t.test(`deny: ${name} → ${status} ${code}, and the upstream receives nothing`, async (t: Test) => {
      const { res, seen } = await upstreamSaw(plain, target, await request())
      t.equal(res.status, status)
      t.equal(seen, undefined, 'the upstream received nothing')
      t.equal(res.json?.error, code, 'the error code reaches the client')
      if (code === 'unauthorized') t.equal(res.headers['www-authenticate'], 'Bearer realm="scopegate"')
      else t.match(res.headers['www-authenticate'], new RegExp(`^Bearer realm="scopegate", error="${code}"`))
      if (code === 'insufficient_scope') t.match(res.headers['www-authenticate'], /scope="read:todos"/)
      t.match(gw.decisions().at(-1), { decision: 'deny', status })
    })
  }

  t.test('cache: an allow is reused for the same token, method and URI; nothing else is', async (t) => {
    const decided = (): number => gw.decisions().length
    const before = decided()
    const first = await upstreamSaw(cached, '/todos/7', { headers: { authorization: `Bearer ${alice}` } })
    const second = await upstreamSaw(cached, '/todos/7', { headers: { authorization: `Bearer ${alice}` } })
    t.equal(decided() - before, 1, 'one decision for two identical requests')
    t.equal(first.seen?.headers['x-auth-subject'], 'alice')
    t.equal(second.seen?.headers['x-auth-subject'], 'alice', 'the cached allow still carries the identity')

    const other = await upstreamSaw(cached, '/todos/7', { headers: { authorization: `Bearer ${bob}` } })
    t.equal(other.seen?.headers['x-auth-subject'], 'bob', 'another token is decided anew')
    await upstreamSaw(cached, '/todos/8', { headers: { authorization: `Bearer ${alice}` } })
    t.equal(decided() - before, 3, 'another URI is decided anew')

    const deniedBefore = decided()
    for (let i = 0; i < 2; i++) {
      const denied = await upstreamSaw(cached, '/todos/7', {})
      t.equal(denied.res.status, 401)
      t.equal(denied.seen, undefined)
    }
    t.equal(decided() - deniedBefore, 1, 'a denial the key alone decides (no token) is kept briefly: asked once')
  })

  t.test('cache with a key that forgets the token: Vary: Authorization still keeps tokens apart', async (t) => {
    const a = await upstreamSaw(weak, '/todos/9', { headers: { authorization: `Bearer ${alice}` } })
    const b = await upstreamSaw(weak, '/todos/9', { headers: { authorization: `Bearer ${bob}` } })
    const none = await upstreamSaw(weak, '/todos/9', {})
    t.equal(a.seen?.headers['x-auth-subject'], 'alice')
    t.equal(b.seen?.headers['x-auth-subject'], 'bob', 'bob does not get alice\'s cached allow')
    t.equal(none.res.status, 401, 'no token does not get a cached allow')
    t.equal(none.seen, undefined)
    // The denial for no token is now cached too, under the same weak key: Vary keeps it from the tokens.
    const again = await upstreamSaw(weak, '/todos/9', { headers: { authorization: `Bearer ${alice}` } })
    t.equal(again.res.status, 200, 'alice does not get the cached denial')
    t.equal(again.seen?.headers['x-auth-subject'], 'alice')
    const noneAgain = await upstreamSaw(weak, '/todos/9', {})
    t.equal(noneAgain.res.status, 401, 'no token still gets no allow')
    t.equal(noneAgain.seen, undefined)
  })

  t.test('denials and allows alike leave nginx\'s connection to scopegate reusable: a few connections, not one per call', async (t) => {
    // nginx reuses a kept-alive upstream connection after an auth_request subrequest only when the
    // answer has no body to skip (it reads headers only): a denial with a body cost one TCP connection.
    const admin = gw.gateway.admin
    if (admin === null) throw new Error('no admin listener')
    let accepted = 0
    const onConnection = (): void => { accepted++ }
    admin.server.on('connection', onConnection)
    t.teardown(() => { admin.server.off('connection', onConnection) })
    const bad = `Bearer ${alice.slice(0, -4)}AAAA`
    const upstreamBefore = echo.received.length
    const decisionsBefore = gw.decisions().length
    const CALLS = 200
    for (let i = 0; i < CALLS; i++) {
      const res = await send(through(plain), `/todos/${i}`, { headers: { authorization: bad } })
      if (res.status !== 401 || res.json?.error !== 'invalid_token') throw new Error(`denial ${i}: ${res.status} ${res.body}`)
    }
    t.equal(echo.received.length, upstreamBefore, `${CALLS} denials: the upstream received nothing`)
    t.ok(accepted <= 3, `${CALLS} denials through nginx took ${accepted} connection(s) to scopegate`)
    const afterDenials = accepted
    for (let i = 0; i < CALLS; i++) {
      const res = await send(through(plain), `/todos/${i}`, { headers: { authorization: `Bearer ${alice}` } })
      if (res.status !== 200) throw new Error(`allow ${i}: ${res.status} ${res.body}`)
    }
    t.equal(echo.received.length, upstreamBefore + CALLS, `${CALLS} allows: the upstream received each`)
    t.equal(echo.received.at(-1)?.headers['x-auth-subject'], 'alice')
    t.ok(accepted - afterDenials <= 3, `${CALLS} allows through nginx took ${accepted - afterDenials} more connection(s) to scopegate`)
    t.equal(gw.decisions().length - decisionsBefore, 2 * CALLS, 'every call was decided by scopegate')
  })

  t.test('nginx logged no errors', async (t) => {
    t.notMatch(running.stderr(), /\[(emerg|alert|crit|error)\]/, running.stderr())
  })
})
