/**
 * The early refusal (src/http/early-refusal.ts) in front of a stand-in for Fastify's router on a real
 * Node server: which requests it answers itself (and with exactly what), which it hands on with their
 * decision, and which it leaves alone for `onRequest` to check first.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { PendingDecision, type Decision } from '../../src/decision/decide.js'
import { buildEngine, type Engine } from '../../src/decision/engine.js'
import { createDecisionLog } from '../../src/http/decision-log.js'
import { EarlyRefusal } from '../../src/http/early-refusal.js'
import { createLogger } from '../../src/observability/logger.js'
import { deny, type GatewayError } from '../../src/shared/errors.js'
import { cacheKey } from '../../src/token/verified-token.js'
import { TokenMiss, type Verifier } from '../../src/token/verify-token.js'
import { compileTestConfig } from '../helpers/gateway.js'
import { rawAnswer } from '../helpers/raw-answer.js'
import { rawRequest } from '../helpers/raw-http.js'

const config = compileTestConfig({
  issuers: [{ id: 'idp', issuer: 'https://idp.example/', jwksUri: 'https://idp.example/jwks', algorithms: ['RS256'], audiences: ['https://todo.api'] }],
  upstreams: { todo: { url: 'http://todo-api:3000' } },
  routes: [
    { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' },
    { id: 'app', match: { path: '/app', prefix: true }, upstream: 'todo', cors: { origins: ['https://app.example'], exposeHeaders: ['WWW-Authenticate'] } },
    { id: 'health', match: { path: '/health' }, upstream: 'todo', auth: 'none' }
  ]
})

const BAD_SIGNATURE = deny.invalidToken('token_signature_invalid', 'the token signature is invalid')

/** Tokens the verifier's caches know as bad (`bad.*`) or not at all (anything else: a miss). */
const verifier: Verifier = {
  lookup: (token) => token.startsWith('bad.') ? BAD_SIGNATURE : new TokenMiss(token, cacheKey(token)),
  verifyMiss: async () => { throw BAD_SIGNATURE }
}

interface Routed { url: string, took: Decision | PendingDecision | null }

async function setup (t: Test, tracing = false): Promise<{ base: string, routed: Routed[], lines: Array<Record<string, unknown>> }> {
  const engine: Engine = { ...buildEngine(config, null), verifier }
  const lines: Array<Record<string, unknown>> = []
  const destination = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  const decisions = createDecisionLog(createLogger({ level: 'info', destination }))
  const early = new EarlyRefusal({ engine: () => engine, decisions, thumbprint: undefined, tracing })
  const routed: Routed[] = []
  // The stand-in for Fastify: records what it was handed and what `take` gives it (a second take gives nothing).
  const server = http.createServer(early.listener((req, res) => {
    const took = early.take(req)?.decided ?? null
    routed.push({ url: req.url ?? '', took: early.take(req) === undefined ? took : null })
    res.end('routed')
  }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, routed, lines }
}

const challenge = (err: GatewayError | null): string => err === null
  ? 'Bearer realm="scopegate"'
  : `Bearer realm="scopegate", error="${err.code}", error_description="${err.description}"`

t.test('a denial is answered before routing, with the exact fields, body and decision line', async (t) => {
  const { base, routed, lines } = await setup(t)
  const missingBody = JSON.stringify({ error: 'unauthorized', error_description: deny.tokenMissing().description })
  const missing = await rawAnswer(base, '/todos/1?page=2%20')
  t.equal(missing.status, 401)
  t.same(missing.rawHeaders, ['content-type', 'application/json; charset=utf-8', 'cache-control', 'no-store',
    'www-authenticate', challenge(null), 'content-length', String(Buffer.byteLength(missingBody))])
  t.equal(missing.body, missingBody)

  const bad = await rawAnswer(base, '/todos/1', { authorization: 'Bearer bad.token.here' })
  t.equal(bad.status, 401)
  t.same(bad.rawHeaders.slice(0, 6), ['content-type', 'application/json; charset=utf-8', 'cache-control', 'no-store', 'www-authenticate', challenge(BAD_SIGNATURE)])
  t.same(JSON.parse(bad.body), { error: 'invalid_token', error_description: 'the token signature is invalid' })

  const head = await rawAnswer(base, '/todos/1', {}, 'HEAD')
  t.equal(head.status, 401)
  t.equal(head.body, '', 'HEAD: no body')
  t.same(head.rawHeaders.slice(-2), ['content-length', String(Buffer.byteLength(missingBody))], 'HEAD: the length of the body it would have had')

  const noRoute = await rawAnswer(base, '/nowhere')
  t.equal(noRoute.status, 404)

  t.same(routed, [], 'the router saw none of them')
  t.match(lines, [
    { msg: 'decision', route: 'todos', method: 'GET', path: '/todos/1', decision: 'deny', reason: 'token_missing', status: 401, upstreamStatus: null },
    { msg: 'decision', route: 'todos', method: 'GET', path: '/todos/1', decision: 'deny', reason: 'token_signature_invalid', status: 401, tokenPath: 'cache' },
    { msg: 'decision', route: 'todos', method: 'HEAD', reason: 'token_missing', status: 401 },
    { msg: 'decision', route: null, method: 'GET', path: '/nowhere', reason: 'no_route', status: 404 }
  ])
  t.equal(lines.length, 4)
  t.notOk(JSON.stringify(lines).includes('bad.token.here'), 'the token is in no line')
})

t.test('on a CORS route the denial carries the CORS fields first, as onRequest answered it', async (t) => {
  const { base, routed } = await setup(t)
  const allowed = await rawAnswer(base, '/app/x', { origin: 'https://app.example' })
  t.equal(allowed.status, 401)
  t.same(allowed.rawHeaders.slice(0, 6), ['vary', 'Origin', 'access-control-allow-origin', 'https://app.example',
    'access-control-expose-headers', 'WWW-Authenticate'])
  t.same(allowed.rawHeaders.slice(6, 8), ['content-type', 'application/json; charset=utf-8'])
  const foreign = await rawAnswer(base, '/app/x', { origin: 'https://evil.example' })
  t.same(foreign.rawHeaders.slice(0, 4), ['vary', 'Origin', 'content-type', 'application/json; charset=utf-8'], 'a foreign origin: Vary only')
  t.same(routed, [])
})

t.test('an allow or a token to verify goes on to the router with its decision, taken once', async (t) => {
  const { base, routed, lines } = await setup(t)
  t.equal((await rawAnswer(base, '/health')).body, 'routed')
  t.equal((await rawAnswer(base, '/todos/1', { authorization: 'Bearer fresh.token.here' })).body, 'routed')
  t.equal(routed.length, 2)
  t.match(routed[0], { url: '/health', took: { allowed: true, route: { id: 'health' } } })
  t.ok(routed[1]?.took instanceof PendingDecision, 'a fresh token: its pending verification')
  t.same(lines, [], 'no line: the request is not answered yet')
})

t.test('requests whose earlier checks belong to onRequest are left to it, undecided', async (t) => {
  const { base, routed } = await setup(t)
  const cases: Array<[name: string, path: string, headers: Record<string, string>, method?: string]> = [
    ['an escape in the path (the router may refuse it as a bad URL)', '/todos/%74', {}],
    ['Expect: 100-continue', '/todos/1', { expect: '100-continue' }, 'POST'],
    ['a preflight method', '/app/x', { origin: 'https://app.example', 'access-control-request-method': 'GET' }, 'OPTIONS'],
    ['a method the early path does not know', '/todos/1', {}, 'PROPFIND'],
    ['a gRPC call', '/todos/1', { 'content-type': 'application/grpc' }, 'POST'],
    ['an absolute-form target', 'http://other.example/todos/1', {}]
  ]
  for (const [name, path, headers, method] of cases) {
    const before = routed.length
    t.equal((await rawAnswer(base, path, headers, method)).body, 'routed', name)
    t.equal(routed.length, before + 1, `${name}: routed`)
    t.equal(routed.at(-1)?.took, null, `${name}: nothing decided`)
  }
  const twoHosts = await rawRequest(base, ['GET /todos/1 HTTP/1.1', 'Host: a.example', 'Host: b.example'])
  t.equal(twoHosts.body, 'routed', 'two Host headers: left to onRequest, which refuses them')
  t.equal(routed.at(-1)?.took, null, 'two Host headers: nothing decided')
  t.equal((await rawAnswer(base, '/todos/1?q=%zz')).status, 401, 'an escape in the query only: decided early')
})

t.test('with tracing on nothing is decided early: the spans start in onRequest', async (t) => {
  const { base, routed } = await setup(t, true)
  t.equal((await rawAnswer(base, '/todos/1')).body, 'routed')
  t.same(routed, [{ url: '/todos/1', took: null }])
})
