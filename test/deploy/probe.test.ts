/**
 * `scopegate probe URL` end to end, as an operator runs it after a deploy (`node dist/cli.js probe`):
 * against scopegate in front of the echo upstream it must say "protected" (exit 0) and the upstream must
 * receive nothing; against the bare echo upstream, "not protected" (exit 1), with the upstream having
 * received every hostile request byte for byte; behind a real nginx, a location with `auth_request` is
 * protected and a location someone added without it is not. A redirect is reported, never followed.
 * `npm test` builds dist/ first.
 */
import http from 'node:http'
import { tmpdir } from 'node:os'
import t from 'tap'
import { decodeProtectedHeader } from 'jose'
import { closeServer, listenLocal, trackSockets, type Echo } from '../helpers/echo-upstream.js'
import { run, type Result } from '../helpers/cli.js'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { nginxAndGateway } from '../forward-auth/nginx-and-gateway.js'
import { freePort, startNginx } from '../forward-auth/nginx-process.js'

// Each run is a Node start-up and a fresh RSA key (a second or more on a busy machine).
t.setTimeout(240_000)

const API = 'https://todo.api'
const PROBES = ['no-token', 'alg-none', 'wrong-key', 'forged-identity', 'dot-segment', 'semicolon-dots', 'double-slash', 'encoded-letter']

/** Runs `scopegate probe …` asynchronously, so the servers in this process keep answering. */
function probe (args: string[]): Promise<Result> {
  return run(['probe', '--timeout', '20s', ...args], tmpdir())
}

/** Each probe's line: name → [status, verdict]. */
function lines (stdout: string): Map<string, [string, string]> {
  const out = new Map<string, [string, string]>()
  for (const line of stdout.trim().split('\n').slice(0, -1)) {
    const match = /^(\S+)\s+(\S+)\s+(refused|NOT PROTECTED|inconclusive|unreachable)\s/.exec(line)
    if (match !== null) out.set(match[1] as string, [match[2] as string, match[3] as string])
  }
  return out
}
const summary = (stdout: string): string => stdout.trim().split('\n').at(-1) ?? ''

/** What the echo upstream received during `run`. */
async function receivedDuring<T> (echo: Echo, run: () => Promise<T>): Promise<{ result: T, seen: Echo['received'] }> {
  const before = echo.received.length
  const result = await run()
  return { result, seen: echo.received.slice(before) }
}

t.test('against scopegate in front of the echo upstream: protected, and the upstream received nothing', async (t) => {
  const { jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } } }]
  })
  t.teardown(() => gw.close())

  const { result, seen } = await receivedDuring(echo, () => probe([`${gw.proxyUrl}/todos?page=2`, '--issuer', jwks.issuer, '--audience', API]))
  t.equal(result.code, 0, 'exit 0')
  t.equal(summary(result.stdout), `protected: all ${PROBES.length} hostile requests were refused`)
  const got = lines(result.stdout)
  t.same([...got.keys()], PROBES, 'one line per hostile request, in order')
  for (const [name, [status, verdict]] of got) {
    t.equal(verdict, 'refused', `${name}: refused`)
    t.match(status, /^4\d\d$/, `${name}: a 4xx`)
  }
  t.match(result.stdout, /^no-token +401 +refused +no valid token \(unauthorized\)$/m, 'no token: 401 unauthorized')
  t.match(result.stdout, /^alg-none +401 +refused +no valid token \(invalid_token\)$/m, 'alg none: 401 invalid_token')
  t.match(result.stdout, /^wrong-key +401 +refused +no valid token \(invalid_token\)$/m, 'wrong key: 401 invalid_token')
  t.same(seen, [], 'the upstream received nothing')
  t.equal(gw.decisions().length, PROBES.length, 'scopegate decided every hostile request')
  t.ok(gw.decisions().every((d) => d.decision === 'deny'), 'and denied each')
  t.equal(result.stderr, '')
})

t.test('against the bare echo upstream: not protected, exit 1; it received each request as the probe built it', async (t) => {
  const { jwks, echo } = await issuerAndEcho(t)
  const { result, seen } = await receivedDuring(echo, () => probe([`${echo.url}/todos?page=2`, '--issuer', jwks.issuer]))
  t.equal(result.code, 1, 'exit 1')
  t.match(summary(result.stdout), new RegExp(`^NOT PROTECTED: ${PROBES.length} of ${PROBES.length} hostile requests got a 2xx`))
  const got = lines(result.stdout)
  t.same([...got.keys()], PROBES)
  for (const [name, [status, verdict]] of got) t.same([status, verdict], ['200', 'NOT PROTECTED'], name)

  t.same(seen.map((r) => r.url), [
    '/todos?page=2', '/todos?page=2', '/todos?page=2', '/todos?page=2',
    '/scopegate-probe/%2e%2e/todos?page=2', '/scopegate-probe/..;/todos?page=2', '//todos?page=2', '/%74odos?page=2'
  ], 'the path tricks arrive byte for byte, not normalized by the client')
  t.notOk(seen[0]?.headers.authorization, 'no-token: no Authorization')
  const bearer = (i: number): string => (seen[i]?.headers.authorization ?? '').replace(/^Bearer /, '')
  t.equal(decodeProtectedHeader(bearer(1)).alg, 'none', 'alg-none: an unsigned token')
  t.equal(bearer(1).split('.')[2], '', 'alg-none: an empty signature')
  t.match(decodeProtectedHeader(bearer(2)), { alg: 'RS256', kid: /^scopegate-probe-/ }, 'wrong-key: RS256 with a kid of its own')
  t.equal(JSON.parse(Buffer.from(bearer(2).split('.')[1] as string, 'base64url').toString()).iss, jwks.issuer, 'the forged token names the issuer it was given')
  t.match(seen[3]?.headers, { 'x-auth-subject': 'scopegate-probe', 'x-auth-scopes': '*', 'x-auth-roles': 'admin' }, 'forged-identity: x-auth-* headers')
  t.notOk(seen[3]?.headers.authorization, 'forged-identity: and no token')
  t.ok(seen.every((r) => r.method === 'GET'), 'only GETs')
})

t.test('a redirect is reported and not followed, to another host or any', async (t) => {
  const { echo } = await issuerAndEcho(t)
  const server = http.createServer((_req, res) => { res.writeHead(302, { location: `${echo.url}/login` }).end() })
  const sockets = trackSockets(server)
  const port = await listenLocal(server)
  t.teardown(() => closeServer(server, sockets))
  const { result, seen } = await receivedDuring(echo, () => probe([`http://localhost:${port}/todos`]))
  t.equal(result.code, 1, 'not shown protected: exit 1')
  t.match(summary(result.stdout), /^inconclusive: /)
  for (const [name, [status, verdict]] of lines(result.stdout)) t.same([status, verdict], ['302', 'refused'], name)
  t.match(result.stdout, `redirected to ${new URL(echo.url).host}, not followed`)
  t.same(seen, [], 'the host redirected to received nothing')
})

t.test('usage errors and an unreachable URL: exit 2', async (t) => {
  for (const args of [[], ['ftp://example.com/'], ['not a url'], ['http://user:pw@127.0.0.1/'], ['http://127.0.0.1/', '--timeout', 'soon'], ['--nope', 'http://127.0.0.1/'], ['http://127.0.0.1/', '--host', 'a.example\r\nx-evil: 1']]) {
    const result = await probe(args)
    t.equal(result.code, 2, `${JSON.stringify(args)}: exit 2`)
    t.match(result.stderr, /usage: scopegate probe URL/)
    t.equal(result.stdout, '')
  }
  const port = await freePort()
  const result = await probe([`http://127.0.0.1:${port}/todos`])
  t.equal(result.code, 2, 'nothing listening: exit 2')
  t.match(result.stdout, /^no-token\s+-\s+unreachable\s+no answer: connect ECONNREFUSED/)
  t.match(summary(result.stdout), /^unreachable: no-token got no answer/)
})

t.test('behind a real nginx: the location with auth_request is protected, the one without it is not', async (t) => {
  const started = await nginxAndGateway(t, API, {
    routes: [{ id: 'api', match: { path: '/', prefix: true }, upstream: 'todo' }]
  })
  if (started === null) return
  const { nginx, jwks, echo, gw } = started
  const port = await freePort()
  const dir = t.testdir({})
  // The mistake the probe is for: /reports/ was added later, and its location has no auth_request.
  const running = await startNginx(nginx, dir, `
  server {
    listen 127.0.0.1:${port};
    location / {
      auth_request /_scopegate;
      proxy_pass ${echo.url};
    }
    location /reports/ {
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
    }
  }`, port)
  t.teardown(() => running.stop())

  const good = await receivedDuring(echo, () => probe([`http://127.0.0.1:${port}/todos`, '--issuer', jwks.issuer, '--audience', API]))
  t.equal(good.result.code, 0, '/todos: protected')
  t.match(summary(good.result.stdout), /^protected: /)
  t.same(good.seen, [], 'the upstream received nothing for /todos')

  const bad = await receivedDuring(echo, () => probe([`http://127.0.0.1:${port}/reports/monthly`]))
  t.equal(bad.result.code, 1, '/reports/: exit 1')
  t.match(summary(bad.result.stdout), /^NOT PROTECTED: /)
  t.same(lines(bad.result.stdout).get('no-token'), ['200', 'NOT PROTECTED'], 'no token: 200 from the app')
  t.ok(bad.seen.some((r) => r.url === '/reports/monthly' && r.headers.authorization === undefined), 'the upstream received the request without a token')
})
