/**
 * Host-based routes behind a real nginx (`auth_request`): nginx names the original host with
 * `proxy_set_header X-Forwarded-Host $host` (docs/ingress-nginx.md), so one scopegate gives
 * `a.example.com/api` and `b.example.com/api` their own policies. A client's own X-Forwarded-Host is
 * overwritten by nginx, so it cannot pick the other host's policy.
 *
 * nginx must be installed (CI's `.ci/run` installs nginx-light): without it this test fails, it does
 * not skip.
 */
import t, { type Test } from 'tap'
import { nginxAndGateway } from './nginx-and-gateway.js'
import { send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { freePort, startNginx } from './nginx-process.js'

const API = 'https://todo.api'

t.test('host routes through nginx auth_request', async (t) => {
  const started = await nginxAndGateway(t, API, {
    routes: [
      { id: 'a-api', match: { path: '/api', prefix: true, host: 'a.example.com' }, upstream: 'todo', policy: { conditions: [{ claim: 'tenant', equals: 'acme' }] } },
      { id: 'b-api', match: { path: '/api', prefix: true, host: 'b.example.com' }, upstream: 'todo', policy: { roles: { require: ['ops'] } } }
    ]
  })
  if (started === null) return
  const { nginx, key, jwks, echo, gw } = started

  const port = await freePort()
  const running = await startNginx(nginx, t.testdir({}), `
  server {
    listen 127.0.0.1:${port};
    location / {
      auth_request /_scopegate;
      auth_request_set $scopegate_route $upstream_http_x_auth_route;
      proxy_set_header x-auth-route $scopegate_route;
      proxy_pass ${echo.url};
    }
    location = /_scopegate {
      internal;
      proxy_pass ${gw.adminUrl}/decisions;
      proxy_pass_request_body off;
      proxy_pass_request_headers off;
      proxy_set_header Content-Length "";
      proxy_set_header Authorization $http_authorization;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Forwarded-Host $host;
    }
  }`, port)
  t.teardown(() => running.stop())

  const token = (claims: Record<string, unknown>): Promise<string> => mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice', ...claims })
  const acme = await token({ tenant: 'acme', roles: ['dev'] })
  const ops = await token({ tenant: 'globex', roles: ['ops'] })

  const call = async (t: Test, host: string, bearer: string, status: number, route?: string, extra: Record<string, string> = {}): Promise<void> => {
    const before = echo.received.length
    const res = await send(`http://127.0.0.1:${port}`, '/api/x', { headers: { host, authorization: `Bearer ${bearer}`, ...extra } })
    t.equal(res.status, status, `${host}: ${status}`)
    const seen = echo.received.slice(before)
    if (route === undefined) t.equal(seen.length, 0, 'the upstream received nothing')
    else t.equal(seen[0]?.headers['x-auth-route'], route, `the upstream received it on ${route}`)
  }

  await call(t, 'a.example.com', acme, 200, 'a-api')
  await call(t, 'a.example.com', ops, 403)
  await call(t, 'b.example.com:8080', ops, 200, 'b-api')
  await call(t, 'b.example.com', acme, 403)
  await call(t, 'b.example.com', acme, 403, undefined, { 'x-forwarded-host': 'a.example.com' })
  await call(t, 'c.example.com', acme, 403)
  t.match(gw.decisions().at(-1), { decision: 'deny', reason: 'no_route' })
})
