/**
 * The shipped nginx decision cache (`deploy/nginx/scopegate-auth-cache.conf`, docs/ingress-nginx.md),
 * included as it is in a real nginx's `auth_request` location in front of scopegate. Which answers came
 * from the cache is proven by counting the decisions scopegate made: a cached allow serves only the same
 * token, method, host and URI; a denial that the key alone decides is kept for the route's
 * `forwardAuth.denialCache` and answers only its own key, keeping its status and challenge, never turning
 * into an allow; the other denials (network rules, rate limits, a key a JWKS refresh may bring, a token
 * not valid yet) and every answer on a route with `cacheHints: false` or `denialCache: 0s` are asked on
 * every request. Each call is checked for what the client saw and what the upstream received.
 *
 * nginx must be installed (CI's `.ci/run` installs nginx-light): without it this test fails, it does
 * not skip.
 */
import t, { type Test } from 'tap'
import { type Received } from '../helpers/echo-upstream.js'
import { nginxAndGateway } from './nginx-and-gateway.js'
import { send, type TestResponse } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { AUTH_CACHE_CONF, ERROR_MAP, authServer, scopegateUpstream } from '../../bench/nginx-auth-request-config.js'
import { freePort, startNginx } from './nginx-process.js'

const API = 'https://todo.api'

t.test('the shipped nginx decision cache', async (t) => {
  const started = await nginxAndGateway(t, API, {
    routes: [
      { id: 'todos-read', match: { path: '/todos', prefix: true, methods: ['GET'] }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } } },
      { id: 'todos-write', match: { path: '/todos', prefix: true, methods: ['POST', 'DELETE'] }, upstream: 'todo', policy: { scopes: { require: ['write:todos'] } } },
      { id: 'admin', match: { path: '/admin', prefix: true }, upstream: 'todo', policy: { scopes: { require: ['admin'] } } },
      { id: 'live', match: { path: '/live', prefix: true }, upstream: 'todo', forwardAuth: { cacheHints: false } },
      { id: 'fresh-denials', match: { path: '/fresh', prefix: true }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } }, forwardAuth: { denialCache: '0s' } },
      { id: 'brief', match: { path: '/brief', prefix: true }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } }, forwardAuth: { denialCache: '1s' } },
      { id: 'lan-only', match: { path: '/lan', prefix: true }, upstream: 'todo', policy: { network: { allow: ['10.0.0.0/8'] } } },
      { id: 'limited', match: { path: '/limited', prefix: true }, upstream: 'todo', rateLimit: { limit: 1, window: '1h' } }
    ]
  })
  if (started === null) return
  const { nginx, key, jwks, echo, gw } = started

  const port = await freePort()
  const dir = t.testdir({})
  const running = await startNginx(nginx, dir, [
    `  proxy_cache_path ${dir}/decisions levels=1:2 keys_zone=scopegate_decisions:1m max_size=8m inactive=2m use_temp_path=off;`,
    ERROR_MAP,
    scopegateUpstream(gw.adminUrl, echo.url),
    authServer(port, `include ${AUTH_CACHE_CONF};`)
  ].join('\n'), port)
  t.teardown(() => running.stop())

  const token = (claims: Record<string, unknown>): Promise<string> => mintToken(key, { iss: jwks.issuer, aud: API, client_id: 'todo-web', ...claims })
  const alice = await token({ sub: 'alice', scope: 'read:todos write:todos' })
  const bob = await token({ sub: 'bob', scope: 'read:todos' })
  const mallory = await token({ sub: 'mallory', scope: 'profile' })
  const unknownKid = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'eve', scope: 'read:todos' }, { header: { kid: 'not-in-the-jwks' } })
  const notYet = await token({ sub: 'nia', scope: 'read:todos', nbf: Math.floor(Date.now() / 1000) + 3600 })

  interface Seen { res: TestResponse, upstream: Received | undefined, decided: number }
  /** One call through nginx: what the client got, what the upstream received, and how many decisions scopegate made for it. */
  const call = async (target: string, bearer?: string, method = 'GET', host?: string): Promise<Seen> => {
    const [upstreamBefore, decidedBefore] = [echo.received.length, gw.decisions().length]
    const headers: Record<string, string> = {}
    if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`
    if (host !== undefined) headers.host = host
    const res = await send(`http://127.0.0.1:${port}`, target, { method, headers })
    const upstream = echo.received.slice(upstreamBefore)
    if (upstream.length > 1) throw new Error(`the upstream received ${upstream.length} requests for one call`)
    return { res, upstream: upstream[0], decided: gw.decisions().length - decidedBefore }
  }
  const allowed = (t: Test, seen: Seen, subject: string, decided: number, why: string): void => {
    t.equal(seen.res.status, 200, `${why}: 200`)
    t.equal(seen.upstream?.headers['x-auth-subject'], subject, `${why}: the upstream saw ${subject}`)
    t.equal(seen.decided, decided, `${why}: ${decided === 0 ? 'answered from the cache' : 'decided by scopegate'}`)
  }
  /** A denial as the client saw it; `decided` 0: answered from the cache, 1: asked of scopegate. */
  const denied = (t: Test, seen: Seen, status: number, code: string, decided: number, why: string): void => {
    t.equal(seen.res.status, status, `${why}: ${status}`)
    t.equal(seen.res.json?.error, code, `${why}: ${code}`)
    t.equal(seen.upstream, undefined, `${why}: the upstream received nothing`)
    t.equal(seen.decided, decided, `${why}: ${decided === 0 ? 'answered from the cache' : 'decided by scopegate'}`)
  }

  t.test('an allow is reused for the same token, method, host and URI, and for nothing else', async (t) => {
    allowed(t, await call('/todos/1', alice), 'alice', 1, 'first call')
    allowed(t, await call('/todos/1', alice), 'alice', 0, 'same call again')
    denied(t, await call('/todos/1', mallory), 403, 'insufficient_scope', 1, 'another token that scopegate denies')
    allowed(t, await call('/todos/1', bob), 'bob', 1, 'another token that scopegate allows')
    denied(t, await call('/todos/1'), 401, 'unauthorized', 1, 'no token at all')
    allowed(t, await call('/todos/1?page=2', alice), 'alice', 1, 'another query')
    allowed(t, await call('/todos/1', alice, 'GET', 'other.example'), 'alice', 1, 'another host')
    allowed(t, await call('/todos/1', alice), 'alice', 0, 'the first call, still cached')
  })

  t.test('another method and another route are decided anew', async (t) => {
    allowed(t, await call('/todos/2', bob), 'bob', 1, 'bob reads')
    denied(t, await call('/todos/2', bob, 'DELETE'), 403, 'insufficient_scope', 1, 'bob deletes, the same URI')
    allowed(t, await call('/todos/2', alice, 'DELETE'), 'alice', 1, 'alice deletes')
    allowed(t, await call('/todos/2', alice, 'DELETE'), 'alice', 0, 'alice deletes again')
    denied(t, await call('/admin/todos/2', alice), 403, 'insufficient_scope', 1, 'alice on the admin route')
  })

  t.test('a denial the key alone decides is kept for its own key only, and never turns into an allow', async (t) => {
    denied(t, await call('/todos/3', mallory), 403, 'insufficient_scope', 1, 'mallory, first')
    allowed(t, await call('/todos/3', alice), 'alice', 1, 'alice, the same URI: her own answer')
    for (let round = 0; round < 2; round++) {
      const seen = await call('/todos/3', mallory)
      denied(t, seen, 403, 'insufficient_scope', 0, `round ${round}: mallory again`)
      t.match(seen.res.headers['www-authenticate'], /^Bearer .*error="insufficient_scope".*scope="read:todos"/, `round ${round}: the cached denial keeps its challenge`)
      allowed(t, await call('/todos/3', alice), 'alice', 0, `round ${round}: alice, still her own allow`)
    }
    denied(t, await call('/todos/3?x=1', mallory), 403, 'insufficient_scope', 1, 'another query')
    denied(t, await call('/todos/3', mallory, 'GET', 'other.example'), 403, 'insufficient_scope', 1, 'another host')
    denied(t, await call('/todos/3', mallory, 'POST'), 403, 'insufficient_scope', 1, 'another method')
    denied(t, await call('/admin/3', mallory), 403, 'insufficient_scope', 1, 'another route')

    const bad = `${alice.slice(0, -4)}AAAA`
    const first = await call('/todos/4', bad)
    denied(t, first, 401, 'invalid_token', 1, 'a token that does not verify')
    const again = await call('/todos/4', bad)
    denied(t, again, 401, 'invalid_token', 0, 'the same again')
    t.equal(again.res.headers['www-authenticate'], first.res.headers['www-authenticate'], 'the same challenge from the cache')
    allowed(t, await call('/todos/4', alice), 'alice', 1, 'the valid token on that URI')
    denied(t, await call('/todos/4', 'garbage'), 401, 'invalid_token', 1, 'a malformed token')
    denied(t, await call('/todos/4', 'garbage'), 401, 'invalid_token', 0, 'the malformed token again')
    denied(t, await call('/todos/5'), 401, 'unauthorized', 1, 'no token')
    denied(t, await call('/todos/5'), 401, 'unauthorized', 0, 'no token again')
    allowed(t, await call('/todos/5', bob), 'bob', 1, 'then a token, on the same URI')
  })

  t.test('denials that depend on more than the key are asked every time', async (t) => {
    for (let i = 0; i < 3; i++) {
      denied(t, await call('/todos/6', unknownKid), 401, 'invalid_token', 1, `call ${i}: a kid the JWKS may yet bring`)
      denied(t, await call('/todos/6', notYet), 401, 'invalid_token', 1, `call ${i}: a token whose nbf is ahead`)
      denied(t, await call('/lan/1', alice), 401, 'end_users_not_allowed', 1, `call ${i}: a network rule`)
      denied(t, await call('/lan/1'), 401, 'unauthorized', 1, `call ${i}: no token, on a route with a network rule`)
    }
    allowed(t, await call('/limited/1', alice), 'alice', 1, 'the rate limit\'s one request')
    for (let i = 0; i < 3; i++) denied(t, await call('/limited/1', alice), 403, 'rate_limited', 1, `call ${i}: over the rate limit`)
  })

  t.test('forwardAuth.denialCache: 0s: denials are asked every time, allows still cached', async (t) => {
    for (let i = 0; i < 3; i++) denied(t, await call('/fresh/1', mallory), 403, 'insufficient_scope', 1, `call ${i}: mallory`)
    for (let i = 0; i < 2; i++) denied(t, await call('/fresh/1'), 401, 'unauthorized', 1, `call ${i}: no token`)
    allowed(t, await call('/fresh/1', bob), 'bob', 1, 'bob')
    allowed(t, await call('/fresh/1', bob), 'bob', 0, 'bob again')
  })

  t.test('a cached denial is asked again once its lifetime is over', async (t) => {
    denied(t, await call('/brief/1', mallory), 403, 'insufficient_scope', 1, 'first')
    denied(t, await call('/brief/1', mallory), 403, 'insufficient_scope', 0, 'within its second')
    // `s-maxage=1`: nginx keeps it for at least one second. Polled, bounded in count and in time (10 s).
    let asked: Seen | undefined
    const deadline = Date.now() + 10_000
    for (let i = 0; i < 100 && Date.now() < deadline && asked === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      const seen = await call('/brief/1', mallory)
      denied(t, seen, 403, 'insufficient_scope', seen.decided, `poll ${i}`)
      if (seen.decided === 1) asked = seen
    }
    t.ok(asked, 'scopegate was asked again within 10 s')
  })

  t.test('forwardAuth.cacheHints: false: scopegate is asked on every request', async (t) => {
    for (let i = 0; i < 3; i++) allowed(t, await call('/live/feed', alice), 'alice', 1, `call ${i}`)
    for (let i = 0; i < 2; i++) denied(t, await call('/live/feed'), 401, 'unauthorized', 1, `no token, call ${i}`)
  })

  t.test('nginx logged no errors', async (t) => {
    t.notMatch(running.stderr(), /\[(emerg|alert|crit|error)\]/, running.stderr())
  })
})
