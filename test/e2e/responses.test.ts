/**
 * Every row of the response table in docs/responses.md, end to end: a real gateway in front of real
 * upstreams, tokens signed by a real JWKS server. Each denial is checked for its status, `error` code,
 * JSON body, `cache-control: no-store`, the RFC 6750 challenge (401/403) or `Retry-After` (503), for
 * the upstream having received nothing, and for never echoing the token or a stack trace. Upstream
 * failures are checked for having reached (or not) the upstream they name.
 */
import { createSecretKey } from 'node:crypto'
import t, { type Test } from 'tap'
import { closedPort, startEcho, type Echo } from '../helpers/echo-upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { bearer, send, type TestResponse } from '../helpers/http.js'
import { makeKey, mintToken, mintUnsecuredToken, startJwksServer, type TestKey } from '../helpers/jwks-server.js'

const TODO = 'https://todo.api'
const OTHER = 'https://other.api'
const TYPED_ISS = 'https://typed.example'

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

interface Expected {
  status: number
  code: string
  /** The whole WWW-Authenticate value, or a pattern; omitted: the standard error challenge for 401/403, absent otherwise. */
  challenge?: string | RegExp
}

t.test('responses: every row of the contract table', async (t) => {
  const key = await makeKey('RS256')
  const ecKey = await makeKey('ES256')
  const stranger = await makeKey('RS256', 'never-published')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  const downJwks = await startJwksServer([key])
  downJwks.setMode('down')
  t.teardown(() => downJwks.close())

  const echo = await startEcho()
  t.teardown(() => echo.close())
  const resetEcho = await startEcho()
  resetEcho.setMode('reset')
  t.teardown(() => resetEcho.close())
  const hangEcho = await startEcho()
  hangEcho.setMode('hang')
  t.teardown(() => hangEcho.close())
  const unavailableEcho = await startEcho()
  unavailableEcho.setMode({ status: 503 })
  t.teardown(() => unavailableEcho.close())
  const refused = await closedPort()
  const echoes: Echo[] = [echo, resetEcho, hangEcho, unavailableEcho]

  const gw = await startGateway({
    issuers: [
      // cooldown 0s: an unknown kid always triggers a refetch, so "unknown after refresh" is observable.
      { id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['RS256'], audiences: [TODO, OTHER], jwks: { cooldown: '0s' } },
      { id: 'typed', issuer: TYPED_ISS, jwksUri: jwks.url, algorithms: ['RS256'], audiences: [TODO], requireTyp: true },
      { id: 'down', issuer: downJwks.issuer, jwksUri: downJwks.url, algorithms: ['RS256'], audiences: [TODO] }
    ],
    upstreams: {
      echo: { url: echo.url },
      reset: { url: resetEcho.url },
      hang: { url: hangEcho.url, timeout: '300ms' },
      unavailable: { url: unavailableEcho.url },
      refused: { url: refused }
    },
    defaults: { policy: { audience: { allow: [TODO] }, clients: { deny: ['CLIENT_ID'] } } },
    routes: [
      { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'echo', policy: { scopes: { require: ['read:todos'] } } },
      { id: 'scoped', match: { path: '/scoped', prefix: true }, upstream: 'echo', policy: { scopes: { require: ['read:todos', 'write:todos'] } } },
      { id: 'strict', match: { path: '/strict', prefix: true }, upstream: 'echo', policy: { denyStatus: { policy: 403 } } },
      { id: 'reset', match: { path: '/reset', prefix: true }, upstream: 'reset' },
      { id: 'slow', match: { path: '/slow', prefix: true }, upstream: 'hang' },
      { id: 'unavailable', match: { path: '/unavailable', prefix: true }, upstream: 'unavailable' },
      { id: 'refused', match: { path: '/refused', prefix: true }, upstream: 'refused' }
    ]
  })
  t.teardown(() => gw.close())

  /** Every token sent in this file: none may ever appear in a response body or a log line. */
  const tokens: string[] = []
  const remember = (token: string): string => { tokens.push(token); return token }
  const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> =>
    ({ iss: jwks.issuer, aud: TODO, sub: 'alice', client_id: 'todo-app', scope: 'read:todos', ...extra })
  const good = remember(await mintToken(key, claims()))

  const upstreamCount = (): number => echoes.reduce((n, e) => n + e.received.length, 0)

  const assertDenial = (t: Test, res: TestResponse, expected: Expected): void => {
    t.equal(res.status, expected.status, 'status')
    t.equal(res.json?.error, expected.code, 'error code')
    t.type(res.json?.error_description, 'string', 'error_description')
    t.same(Object.keys(res.json ?? {}).sort(), ['error', 'error_description'], 'body is exactly {error, error_description}')
    t.match(res.headers['content-type'], /^application\/json\b/, 'content-type json')
    t.equal(res.headers['cache-control'], 'no-store', 'cache-control no-store')
    const challenge = res.headers['www-authenticate']
    if (expected.status === 401 || expected.status === 403) {
      if (typeof expected.challenge === 'string') t.equal(challenge, expected.challenge, 'WWW-Authenticate')
      else t.match(challenge, expected.challenge ?? new RegExp(`^Bearer realm="scopegate", error="${expected.code}", error_description="[^"]+"$`), 'WWW-Authenticate')
    } else {
      t.equal(challenge, undefined, 'no WWW-Authenticate outside 401/403')
    }
    t.notMatch(res.body, /^\s*at /m, 'no stack trace in the body')
    for (const token of tokens) t.notOk(res.body.includes(token), 'the body never carries the token')
  }

  /** Sends, expects a denial, and checks that no upstream received anything. */
  const denied = async (t: Test, target: string, headers: Record<string, string> | string[], expected: Expected): Promise<TestResponse> => {
    const before = upstreamCount()
    const res = await send(gw.proxyUrl, target, { headers })
    assertDenial(t, res, expected)
    t.equal(upstreamCount(), before, 'no upstream received anything')
    return res
  }

  t.test('allow: a valid token reaches the upstream (baseline for every denial below)', async (t) => {
    const res = await send(gw.proxyUrl, '/todos/1', { headers: bearer(good) })
    t.equal(res.status, 200)
    t.equal(echo.received.at(-1)?.url, '/todos/1')
    t.equal(echo.received.at(-1)?.headers['x-auth-subject'], 'alice')
  })

  t.test('no token on a required route: 401 unauthorized with a bare challenge, no error=', async (t) => {
    const cases: Array<Record<string, string>> = [{}, { authorization: 'Basic YWxpY2U6c2VjcmV0' }]
    for (const headers of cases) {
      await denied(t, '/todos', headers, { status: 401, code: 'unauthorized', challenge: 'Bearer realm="scopegate"' })
    }
  })

  t.test('a malformed or duplicated Authorization header: 400 invalid_request', async (t) => {
    const cases: Array<[string, Record<string, string> | string[]]> = [
      ['Bearer with no token', { authorization: 'Bearer' }],
      ['Bearer with two tokens', { authorization: 'Bearer a b' }],
      ['Bearer with characters outside token68', { authorization: 'Bearer abc$def"ghi' }],
      ['an empty Authorization header', { authorization: '' }],
      // A raw header list is sent as is: node:http adds no Host to it.
      ['two Authorization headers', ['host', 'scopegate.test', 'authorization', `Bearer ${good}`, 'Authorization', `Bearer ${good}`]],
      ['two Authorization headers, the second empty', ['host', 'scopegate.test', 'authorization', `Bearer ${good}`, 'authorization', '']]
    ]
    for (const [name, headers] of cases) {
      await t.test(name, async (t) => { await denied(t, '/todos', headers, { status: 400, code: 'invalid_request' }) })
    }
  })

  t.test('an HTTP/1.1 request without Host: 400 invalid_request as JSON, not Node\'s bare 400', async (t) => {
    await denied(t, '/todos', ['authorization', `Bearer ${good}`], { status: 400, code: 'invalid_request' })
  })

  t.test('invalid tokens: 401 invalid_token', async (t) => {
    const now = Math.floor(Date.now() / 1000)
    const [header, payload] = good.split('.') as [string, string]
    const hs256: TestKey = { kid: key.kid, alg: 'HS256', privateKey: createSecretKey(Buffer.alloc(32, 7)), publicJwk: {} }
    const cases: Array<[string, string]> = [
      ['bad signature', `${header}.${payload}.${b64('not the signature of this token')}`],
      ['bad signature: payload swapped under a real signature', `${header}.${b64(claims({ scope: 'read:todos write:todos' }))}.${good.split('.')[2] as string}`],
      ['alg not allowed: ES256 where the issuer pins RS256', await mintToken(ecKey, claims())],
      ['alg not allowed: HS256 keyed with anything', await mintToken(hs256, claims())],
      ['alg not allowed: alg none', mintUnsecuredToken(claims())],
      ['malformed: two segments', `${header}.${payload}`],
      ['malformed: four segments', `${good}.${payload}`],
      ['malformed: segments that are not base64url', `${header}.${payload}+x.abc`],
      ['malformed: a header that is not JSON', `${b64('not json')}.${payload}.${b64('sig')}`],
      ['malformed: a payload that is a JSON array', `${header}.${b64([1, 2])}.${b64('sig')}`],
      ['expired beyond the clock tolerance', await mintToken(key, claims(), { iat: now - 3600, expiresIn: 60 })],
      ['no exp claim', await mintToken(key, claims(), { noExp: true })],
      ['not yet valid beyond the clock tolerance', await mintToken(key, claims({ nbf: now + 3600 }))],
      ['aud not among the issuer audiences', await mintToken(key, claims({ aud: 'https://stranger.api' }))],
      ['aud accepted by the issuer but not in the route audience.allow', await mintToken(key, claims({ aud: OTHER }))],
      ['wrong typ where the issuer requires at+jwt', await mintToken(key, claims({ iss: TYPED_ISS }), { header: { typ: 'JWT' } })],
      ['no typ where the issuer requires at+jwt', await mintToken(key, claims({ iss: TYPED_ISS }), { header: { typ: undefined } })],
      ['no iss claim', await mintToken(key, claims({ iss: undefined }))]
    ]
    for (const [name, token] of cases) {
      await t.test(name, async (t) => { await denied(t, '/todos', bearer(remember(token)), { status: 401, code: 'invalid_token' }) })
    }
  })

  t.test('the right typ passes where the issuer requires at+jwt', async (t) => {
    // That issuer is the RFC 9068 profile: every claim of §2.2 is required, jti included.
    const res = await send(gw.proxyUrl, '/todos', { headers: bearer(remember(await mintToken(key, claims({ iss: TYPED_ISS, jti: 'j1' }), { header: { typ: 'at+jwt' } }))) })
    t.equal(res.status, 200)
  })

  t.test('unknown kid: refused with 401 invalid_token after one refetch of the JWKS', async (t) => {
    const token = remember(await mintToken(stranger, claims()))
    const before = jwks.fetches
    await denied(t, '/todos', bearer(token), { status: 401, code: 'invalid_token' })
    t.equal(jwks.fetches, before + 1, 'the JWKS was refetched once before refusing')
  })

  t.test('unconfigured issuer: 401 invalid_token and nothing fetched on its behalf', async (t) => {
    const jwksBefore = jwks.fetches
    const discoveryBefore = jwks.discoveryFetches
    const downBefore = downJwks.fetches
    const rogue = await startJwksServer([stranger])
    t.teardown(() => rogue.close())
    const token = remember(await mintToken(stranger, claims({ iss: rogue.issuer })))
    await denied(t, '/todos', bearer(token), { status: 401, code: 'invalid_token' })
    t.equal(rogue.fetches + rogue.discoveryFetches, 0, 'the token\'s own issuer was never contacted')
    t.equal(jwks.fetches, jwksBefore, 'no configured issuer was refetched')
    t.equal(jwks.discoveryFetches, discoveryBefore)
    t.equal(downJwks.fetches, downBefore)
  })

  t.test('policy deny: 401 end_users_not_allowed, or the route\'s denyStatus.policy', async (t) => {
    const token = remember(await mintToken(key, claims({ client_id: 'CLIENT_ID' })))
    await denied(t, '/todos', bearer(token), { status: 401, code: 'end_users_not_allowed' })
    await denied(t, '/strict', bearer(token), { status: 403, code: 'end_users_not_allowed' })
  })

  t.test('insufficient scope: 403 with scope="…" naming every required scope', async (t) => {
    await denied(t, '/scoped', bearer(good), {
      status: 403,
      code: 'insufficient_scope',
      challenge: /^Bearer realm="scopegate", error="insufficient_scope", error_description="[^"]+", scope="read:todos write:todos"$/
    })
  })

  t.test('no route: 404 no_route', async (t) => {
    await denied(t, '/nowhere', bearer(good), { status: 404, code: 'no_route' })
    await denied(t, '/todosx', bearer(good), { status: 404, code: 'no_route' })
  })

  t.test('a path rejected by normalization: 400 invalid_request', async (t) => {
    for (const target of ['/todos/a%2Fb', '/todos/%00', '/..', '/todos/a%5Cb', '/todos/%zz']) {
      await t.test(target, async (t) => { await denied(t, target, bearer(good), { status: 400, code: 'invalid_request' }) })
    }
  })

  t.test('headers too large: 431 request_header_fields_too_large', async (t) => {
    await denied(t, '/todos', { ...bearer(good), 'x-padding': 'p'.repeat(20 * 1024) }, { status: 431, code: 'request_header_fields_too_large' })
  })

  t.test('issuer keys unavailable from the start: 503 temporarily_unavailable with Retry-After', async (t) => {
    const token = remember(await mintToken(key, claims({ iss: downJwks.issuer })))
    const res = await denied(t, '/todos', bearer(token), { status: 503, code: 'temporarily_unavailable' })
    t.match(res.headers['retry-after'], /^[1-9][0-9]*$/, 'Retry-After is a positive number of seconds')
  })

  t.test('upstream failures', async (t) => {
    await t.test('refused: 502 bad_gateway', async (t) => {
      const before = upstreamCount()
      assertDenial(t, await send(gw.proxyUrl, '/refused/x', { headers: bearer(good) }), { status: 502, code: 'bad_gateway' })
      t.equal(upstreamCount(), before)
    })
    await t.test('reset: 502 bad_gateway, the request reached the upstream once', async (t) => {
      const before = resetEcho.received.length
      assertDenial(t, await send(gw.proxyUrl, '/reset/x', { headers: bearer(good) }), { status: 502, code: 'bad_gateway' })
      t.equal(resetEcho.received.length, before + 1, 'one attempt, not retried')
      t.equal(resetEcho.received.at(-1)?.url, '/reset/x')
    })
    await t.test('timed out: 504 gateway_timeout', async (t) => {
      const before = hangEcho.received.length
      assertDenial(t, await send(gw.proxyUrl, '/slow/x', { headers: bearer(good) }), { status: 504, code: 'gateway_timeout' })
      t.equal(hangEcho.received.length, before + 1, 'the request reached the upstream once')
    })
    await t.test('the upstream\'s own 503 is passed through as is, and the request is sent once, not retried', async (t) => {
      const before = unavailableEcho.received.length
      const res = await send(gw.proxyUrl, '/unavailable/x', { headers: bearer(good) })
      t.equal(res.status, 503)
      t.equal(res.json?.url, '/unavailable/x', 'the upstream\'s body, not a scopegate error')
      t.equal(unavailableEcho.received.length, before + 1, 'one request upstream')
    })
  })

  t.test('the decision log never carries a token', async (t) => {
    // One more request, so every earlier decision line has certainly been written.
    await send(gw.proxyUrl, '/todos', { headers: bearer(good) })
    const raw = gw.rawLog()
    t.ok(gw.decisions().length > 20, 'decisions were logged')
    for (const token of tokens) {
      t.notOk(raw.includes(token), 'no token in the log')
      const signature = token.split('.')[2]
      if (signature !== undefined && signature.length > 16) t.notOk(raw.includes(signature), 'no signature in the log')
    }
    t.notOk(/bearer\s+ey/i.test(raw), 'no Authorization value in the log')
  })
})
