/**
 * A denial answered before Fastify sees the request (src/http/early-refusal.ts) is the one `onRequest`
 * answers: a real gateway, the same denial asked for twice, once as a plain target (answered early) and
 * once with an escaped letter in its path (`/todos` as `/%74odos`: the same normalized path, which the
 * early path leaves to Fastify and `onRequest`). Status, every field in order, body and decision line
 * must match, and the upstream must see neither. Then a connection that was refused early keeps serving.
 */
import http from 'node:http'
import t from 'tap'
import { issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import { mintToken } from '../helpers/jwks-server.js'
import { rawAnswer } from '../helpers/raw-answer.js'

const TODO = 'https://todo.api'

/** The decision lines after `count` of them, waiting a bounded number of event-loop turns (no timers). */
async function linesAfter (gw: TestGateway, count: number, expected: number): Promise<Array<Record<string, unknown>>> {
  for (let i = 0; i < 200 && gw.decisions().length < count + expected; i++) await new Promise((resolve) => setImmediate(resolve))
  return gw.decisions().slice(count).map(({ time: _time, latencyMs: _latency, ...line }) => line)
}

t.test('a denial answered early is the denial onRequest answers', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [TODO] }],
    upstreams: { echo: { url: echo.url } },
    routes: [
      { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'echo', policy: { scopes: { require: ['write:todos'] } } },
      { id: 'app', match: { path: '/app', prefix: true }, upstream: 'echo', cors: { origins: ['https://app.example'], exposeHeaders: ['WWW-Authenticate'] } }
    ]
  })
  t.teardown(() => gw.close())
  const good = await mintToken(key, { iss: jwks.issuer, aud: TODO, sub: 'alice', client_id: 'web', scope: 'read:todos' })
  const [head, payload] = good.split('.')
  const forged = `${head ?? ''}.${payload ?? ''}.${'A'.repeat(86)}`

  const cases: Array<[name: string, plain: string, escaped: string, headers: Record<string, string | string[]>, method?: string]> = [
    ['no token', '/todos/1', '/%74odos/1', {}],
    ['no token, HEAD', '/todos/1', '/%74odos/1', {}, 'HEAD'],
    ['a bad signature, known bad', '/todos/1', '/%74odos/1', { authorization: `Bearer ${forged}` }],
    ['a good token without the scope (403)', '/todos/1?x=1', '/%74odos/1?x=1', { authorization: `Bearer ${good}` }],
    ['not a bearer token', '/todos/1', '/%74odos/1', { authorization: 'Basic dXNlcjpwYXNz' }],
    ['two Authorization headers (400)', '/todos/1', '/%74odos/1', { authorization: [`Bearer ${good}`, `Bearer ${forged}`] }],
    ['a DPoP token without its proof', '/todos/1', '/%74odos/1', { authorization: `DPoP ${good}` }],
    ['a token that is not a JWT', '/todos/1', '/%74odos/1', { authorization: 'Bearer not-a-jwt' }],
    ['a token in the query beside the header (400)', '/todos/1?access_token=x', '/%74odos/1?access_token=x', { authorization: `Bearer ${good}` }],
    ['no route (404)', '/nowhere', '/%6Eowhere', {}],
    ['a CORS route, its origin', '/app/x', '/%61pp/x', { origin: 'https://app.example' }],
    ['a CORS route, another origin', '/app/x', '/%61pp/x', { origin: 'https://evil.example' }]
  ]
  // First sights of the tokens are verified (a pending decision, which never takes the early path): after this, both are known.
  await rawAnswer(gw.proxyUrl, '/todos/1', { authorization: `Bearer ${forged}` })
  await rawAnswer(gw.proxyUrl, '/todos/1', { authorization: `Bearer ${good}` })
  await rawAnswer(gw.proxyUrl, '/todos/1', { authorization: 'Bearer not-a-jwt' })
  for (const [name, plain, escaped, headers, method] of cases) {
    const before = gw.decisions().length
    const early = await rawAnswer(gw.proxyUrl, plain, headers, method)
    const routed = await rawAnswer(gw.proxyUrl, escaped, headers, method)
    t.ok(early.status >= 400, `${name}: refused (${early.status})`)
    t.same(early, routed, `${name}: the same status, fields in the same order, and body`)
    const [earlyLine, routedLine] = await linesAfter(gw, before, 2)
    t.same(earlyLine, routedLine, `${name}: the same decision line`)
    t.match(earlyLine, { decision: 'deny', status: early.status }, `${name}: a denial's line`)
  }
  t.equal(echo.received.length, 0, 'the upstream saw none of them')
  t.notOk(gw.rawLog().includes(good) || gw.rawLog().includes(forged), 'no token in the logs')
})

t.test('a connection refused early keeps serving: denials, then an allow, on one socket', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [TODO] }],
    upstreams: { echo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'echo' }]
  })
  t.teardown(() => gw.close())
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const sockets = new Set<unknown>()
  agent.on('free', (socket) => sockets.add(socket))
  const good = await mintToken(key, { iss: jwks.issuer, aud: TODO, sub: 'alice', client_id: 'web', scope: 'read:todos' })
  for (let i = 0; i < 3; i++) t.equal((await rawAnswer(gw.proxyUrl, `/todos/${i}`, {}, 'GET', agent)).status, 401, `denial ${i}`)
  const allowed = await rawAnswer(gw.proxyUrl, '/todos/9', { authorization: `Bearer ${good}` }, 'GET', agent)
  t.equal(allowed.status, 200)
  // And the token, now known, is allowed on the early-decided path too.
  t.equal((await rawAnswer(gw.proxyUrl, '/todos/10', { authorization: `Bearer ${good}` }, 'GET', agent)).status, 200)
  t.equal(sockets.size, 1, 'one connection served all five')
  t.same(echo.received.map((r) => r.url), ['/todos/9', '/todos/10'], 'the upstream saw the allowed requests only')
  t.same(echo.received.map((r) => [r.headers['x-auth-route'], r.headers['x-auth-subject']]), [['todos', 'alice'], ['todos', 'alice']], 'with the identity of both decisions')
  t.match(gw.decisions().map((d) => [d.reason, d.status]), [['token_missing', 401], ['token_missing', 401], ['token_missing', 401], ['allowed', 200], ['allowed', 200]])
})
