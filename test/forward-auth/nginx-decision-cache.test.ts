/**
 * The shipped nginx decision cache (`deploy/nginx/scopegate-auth-cache.conf`, docs/ingress-nginx.md),
 * included as it is in a real nginx's `auth_request` location in front of scopegate. Which answers came
 * from the cache is proven by counting the decisions scopegate made: a cached allow serves only the same
 * token, method, host and URI; a denial is never cached, and so never turns into an allow or outlives a
 * fixed request; a route with `forwardAuth.cacheHints: false` is asked on every request. Each call is
 * checked for what the client saw and what the upstream received.
 *
 * nginx must be installed (CI's `.ci/run` installs nginx-light): without it this test fails, it does
 * not skip.
 */
import t, { type Test } from 'tap'
import { type Received } from '../helpers/echo-upstream.js'
import { nginxAndGateway } from './nginx-and-gateway.js'
import { send, type TestResponse } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { AUTH_CACHE_CONF, ERROR_MAP, authServer, scopegateUpstream } from '../../bench/nginx-auth-config.js'
import { freePort, startNginx } from './nginx-process.js'

const API = 'https://todo.api'

t.test('the shipped nginx decision cache', async (t) => {
  const started = await nginxAndGateway(t, API, {
    routes: [
      { id: 'todos-read', match: { path: '/todos', prefix: true, methods: ['GET'] }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } } },
      { id: 'todos-write', match: { path: '/todos', prefix: true, methods: ['POST', 'DELETE'] }, upstream: 'todo', policy: { scopes: { require: ['write:todos'] } } },
      { id: 'admin', match: { path: '/admin', prefix: true }, upstream: 'todo', policy: { scopes: { require: ['admin'] } } },
      { id: 'live', match: { path: '/live', prefix: true }, upstream: 'todo', forwardAuth: { cacheHints: false } }
    ]
  })
  if (started === null) return
  const { nginx, key, jwks, echo, gw } = started

  const port = await freePort()
  const dir = t.testdir({})
  const running = await startNginx(nginx, dir, [
    `  proxy_cache_path ${dir}/decisions levels=1:2 keys_zone=scopegate_decisions:1m max_size=8m inactive=2m use_temp_path=off;`,
    ERROR_MAP,
    scopegateUpstream(gw.adminUrl),
    authServer(port, echo.url, `include ${AUTH_CACHE_CONF};`)
  ].join('\n'), port)
  t.teardown(() => running.stop())

  const token = (claims: Record<string, unknown>): Promise<string> => mintToken(key, { iss: jwks.issuer, aud: API, client_id: 'todo-web', ...claims })
  const alice = await token({ sub: 'alice', scope: 'read:todos write:todos' })
  const bob = await token({ sub: 'bob', scope: 'read:todos' })
  const mallory = await token({ sub: 'mallory', scope: 'profile' })

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
  const denied = (t: Test, seen: Seen, status: number, code: string, why: string): void => {
    t.equal(seen.res.status, status, `${why}: ${status}`)
    t.equal(seen.res.json?.error, code, `${why}: ${code}`)
    t.equal(seen.upstream, undefined, `${why}: the upstream received nothing`)
    t.equal(seen.decided, 1, `${why}: decided by scopegate, never from the cache`)
  }

  t.test('an allow is reused for the same token, method, host and URI, and for nothing else', async (t) => {
    allowed(t, await call('/todos/1', alice), 'alice', 1, 'first call')
    allowed(t, await call('/todos/1', alice), 'alice', 0, 'same call again')
    denied(t, await call('/todos/1', mallory), 403, 'insufficient_scope', 'another token that scopegate denies')
    allowed(t, await call('/todos/1', bob), 'bob', 1, 'another token that scopegate allows')
    denied(t, await call('/todos/1'), 401, 'unauthorized', 'no token at all')
    allowed(t, await call('/todos/1?page=2', alice), 'alice', 1, 'another query')
    allowed(t, await call('/todos/1', alice, 'GET', 'other.example'), 'alice', 1, 'another host')
    allowed(t, await call('/todos/1', alice), 'alice', 0, 'the first call, still cached')
  })

  t.test('another method and another route are decided anew', async (t) => {
    allowed(t, await call('/todos/2', bob), 'bob', 1, 'bob reads')
    denied(t, await call('/todos/2', bob, 'DELETE'), 403, 'insufficient_scope', 'bob deletes, the same URI')
    allowed(t, await call('/todos/2', alice, 'DELETE'), 'alice', 1, 'alice deletes')
    allowed(t, await call('/todos/2', alice, 'DELETE'), 'alice', 0, 'alice deletes again')
    denied(t, await call('/admin/todos/2', alice), 403, 'insufficient_scope', 'alice on the admin route')
  })

  t.test('a denial is never cached: denied, then another token allowed, then the first denied again', async (t) => {
    for (let round = 0; round < 2; round++) {
      denied(t, await call('/todos/3', mallory), 403, 'insufficient_scope', `round ${round}: mallory`)
      allowed(t, await call('/todos/3', alice), 'alice', round === 0 ? 1 : 0, `round ${round}: alice`)
      denied(t, await call('/todos/3', mallory), 403, 'insufficient_scope', `round ${round}: mallory again`)
    }
    const bad = `${alice.slice(0, -4)}AAAA`
    denied(t, await call('/todos/3', bad), 401, 'invalid_token', 'a token that does not verify')
    denied(t, await call('/todos/3', bad), 401, 'invalid_token', 'the same again')
  })

  t.test('forwardAuth.cacheHints: false: scopegate is asked on every request', async (t) => {
    for (let i = 0; i < 3; i++) allowed(t, await call('/live/feed', alice), 'alice', 1, `call ${i}`)
    denied(t, await call('/live/feed'), 401, 'unauthorized', 'no token')
  })

  t.test('nginx logged no errors', async (t) => {
    t.notMatch(running.stderr(), /\[(emerg|alert|crit|error)\]/, running.stderr())
  })
})
