// Exercises the end-to-end test helpers against real sockets, so a broken helper fails here and not
// as a mysterious gateway failure elsewhere.
import t from 'tap'
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  type JWK,
} from 'jose'
import { startIdp } from './idp.js'
import { closedPort, startEcho } from './echo-upstream.js'
import { makeKey, mintToken, mintUnsecuredToken, startJwksServer } from './jwks-server.js'

const ROLES = 'https://scopegate.test/roles'
const TODO_API = 'https://todo.api'

/** The `code` of a fetch failure's cause (undici wraps socket errors in TypeError('fetch failed')). */
async function fetchErrorCode (p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    const cause = (err as { cause?: { code?: unknown } }).cause
    return typeof cause?.code === 'string' ? cause.code : (err as Error).name
  }
  return 'no error'
}

/** Polls cond every 10 ms, failing after timeoutMs. */
async function waitFor (cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('waitFor: timed out')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

t.test('idp: real oidc-provider issuing RFC 9068 access tokens', async (t) => {
  const idp = await startIdp({
    clients: [
      { clientId: 'todo-cli', clientSecret: 'cli-secret', scope: 'read:todos write:todos', extraClaims: { [ROLES]: ['editor'] } },
      { clientId: 'other', clientSecret: 'other-secret' },
    ],
    resources: { [TODO_API]: { scope: 'read:todos write:todos delete:todos' } },
  })
  t.teardown(() => idp.close())

  t.match(idp.issuer, /^http:\/\/127\.0\.0\.1:\d+$/, 'issuer is loopback with no trailing slash')
  const discovery = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>
  t.equal(discovery.issuer, idp.issuer, 'discovery issuer')
  t.equal(discovery.jwks_uri, idp.jwksUri, 'discovery jwks_uri')
  t.equal(discovery.token_endpoint, idp.tokenEndpoint, 'discovery token_endpoint')

  const jwks = createRemoteJWKSet(new URL(idp.jwksUri))
  const token = await idp.token({ clientId: 'todo-cli', resource: TODO_API, scope: 'read:todos' })
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer: idp.issuer,
    audience: TODO_API,
    typ: 'at+jwt',
    algorithms: ['RS256'],
  })
  t.equal(protectedHeader.typ, 'at+jwt')
  t.equal(protectedHeader.alg, 'RS256')
  t.equal(protectedHeader.kid, idp.currentKid())
  t.equal(payload.iss, idp.issuer)
  t.equal(payload.aud, TODO_API)
  t.equal(payload.scope, 'read:todos')
  t.equal(payload.client_id, 'todo-cli')
  t.equal(payload.sub, 'todo-cli')
  t.same(payload[ROLES], ['editor'])
  t.ok(typeof payload.exp === 'number' && typeof payload.iat === 'number' && payload.exp - payload.iat === 300)
  t.ok(idp.jwksFetches() >= 1, 'jwks fetch counted')

  // Scopes the resource does not accept are dropped; scopes the client may not use are an error.
  const both = decodeJwt(await idp.token({ clientId: 'todo-cli', resource: TODO_API, scope: 'read:todos write:todos nope' }))
  t.equal(both.scope, 'read:todos write:todos')
  await t.rejects(idp.token({ clientId: 'todo-cli', resource: TODO_API, scope: 'delete:todos' }), /invalid_scope/)
  t.notOk('scope' in decodeJwt(await idp.token({ clientId: 'todo-cli', resource: TODO_API })), 'no scope requested: no scope claim')
  t.notOk(ROLES in decodeJwt(await idp.token({ clientId: 'other', resource: TODO_API })), 'extra claims are per client')
  await t.rejects(idp.token({ clientId: 'todo-cli', resource: 'https://unknown.api' }), /invalid_target/)

  const opaque = await idp.token({ clientId: 'todo-cli', scope: 'read:todos' })
  t.equal(opaque.split('.').length, 1, 'without a resource the access token is opaque')

  // Rotation keeping the old key: new kid signs, old tokens still verify against a fresh JWKS.
  const firstKid = idp.currentKid()
  await idp.rotateKeys()
  const rotated = await idp.token({ clientId: 'todo-cli', resource: TODO_API, scope: 'read:todos' })
  t.not(decodeProtectedHeader(rotated).kid, firstKid, 'new kid after rotation')
  t.equal(decodeProtectedHeader(rotated).kid, idp.currentKid())
  t.equal(new URL(idp.issuer).port, new URL(idp.jwksUri).port, 'same port after rotation')
  const fetchesBefore = idp.jwksFetches()
  const fresh = createRemoteJWKSet(new URL(idp.jwksUri))
  await jwtVerify(rotated, fresh, { issuer: idp.issuer, audience: TODO_API })
  await jwtVerify(token, fresh, { issuer: idp.issuer, audience: TODO_API })
  t.equal(idp.jwksFetches(), fetchesBefore + 1, 'one more jwks fetch')

  // Rotation dropping the old keys: earlier tokens no longer match any published key.
  await idp.rotateKeys({ keepOld: false })
  const published = (await (await fetch(idp.jwksUri)).json()) as { keys: JWK[] }
  t.same(published.keys.map((k) => k.kid), [idp.currentKid()])
  await t.rejects(jwtVerify(rotated, createLocalJWKSet(published)), { code: 'ERR_JWKS_NO_MATCHING_KEY' })
})

t.test('echo upstream', async (t) => {
  const echo = await startEcho()
  t.teardown(() => echo.close())

  const res = await fetch(`${echo.url}/a/b?x=1`, {
    method: 'POST',
    headers: { 'x-test': 'yes', 'content-type': 'text/plain' },
    body: 'hello',
  })
  t.equal(res.status, 200)
  const body = (await res.json()) as { method: string; url: string; headers: Record<string, string>; body: string }
  t.equal(body.method, 'POST')
  t.equal(body.url, '/a/b?x=1')
  t.equal(body.headers['x-test'], 'yes')
  t.equal(body.body, 'hello')
  t.equal(echo.received.length, 1)
  t.equal(echo.received[0]?.body, 'hello')
  t.ok(echo.received[0]?.rawHeaders.includes('x-test'))

  echo.setMode({ status: 418 })
  t.equal((await fetch(echo.url)).status, 418)

  echo.setMode({ delayMs: 150 })
  const started = Date.now()
  t.equal((await fetch(echo.url)).status, 200)
  t.ok(Date.now() - started >= 140, 'delayed')

  echo.setMode('reset')
  t.equal(await fetchErrorCode(fetch(echo.url)), 'ECONNRESET', 'reset: ECONNRESET')

  echo.setMode('hang')
  const hung = fetch(echo.url, { signal: AbortSignal.timeout(300) })
  t.equal(await fetchErrorCode(hung), 'TimeoutError', 'hang: client times out')
  t.equal(echo.received.length, 5, 'every request recorded, answered or not')

  // A second, still pending, hanging request must not keep close() from finishing.
  const pending = fetch(echo.url).catch((err: unknown) => err)
  await waitFor(() => echo.received.length === 6)
  await echo.close()
  t.type(await pending, Error, 'pending request fails when the server closes')
})

t.test('closedPort refuses connections', async (t) => {
  const url = await closedPort()
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(await fetchErrorCode(fetch(url)), 'ECONNREFUSED')
})

t.test('jwks server and minted tokens', async (t) => {
  const rsa = await makeKey()
  const ec = await makeKey('ES256', 'ec-1')
  const ps = await makeKey('PS256')
  const ed = await makeKey('EdDSA')
  t.equal(ec.kid, 'ec-1')
  t.match(rsa.publicJwk, { kty: 'RSA', alg: 'RS256', use: 'sig', kid: rsa.kid })
  t.notOk('d' in rsa.publicJwk, 'public JWK carries no private part')

  const server = await startJwksServer([rsa, ec, ps, ed])
  t.teardown(() => server.close())
  t.match(server.issuer, /^http:\/\/127\.0\.0\.1:\d+$/)

  const discovery = (await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>
  t.same([discovery.issuer, discovery.jwks_uri], [server.issuer, server.url])
  t.equal(server.discoveryFetches, 1)

  const jwks = createRemoteJWKSet(new URL(server.url))
  const claims = { iss: server.issuer, aud: TODO_API, sub: 'u1', scope: 'read:todos' }
  for (const key of [rsa, ec, ps, ed]) {
    const { payload, protectedHeader } = await jwtVerify(await mintToken(key, claims), jwks, {
      issuer: server.issuer,
      audience: TODO_API,
      typ: 'at+jwt',
    })
    t.equal(protectedHeader.kid, key.kid, `${key.alg} verifies`)
    t.equal(payload.exp, (payload.iat ?? 0) + 300)
  }
  t.equal(server.fetches, 1, 'the remote set fetched once')

  // Token shaping.
  const noTyp = await mintToken(rsa, claims, { header: { typ: undefined } })
  t.notOk('typ' in decodeProtectedHeader(noTyp), 'typ removed')
  t.equal(decodeProtectedHeader(await mintToken(rsa, claims, { header: { typ: 'JWT' } })).typ, 'JWT')
  t.notOk('exp' in decodeJwt(await mintToken(rsa, claims, { noExp: true })))
  t.notOk('aud' in decodeJwt(await mintToken(rsa, { sub: 'u1' })))
  const expired = await mintToken(rsa, claims, { iat: Math.floor(Date.now() / 1000) - 600, expiresIn: 60 })
  await t.rejects(jwtVerify(expired, jwks), { code: 'ERR_JWT_EXPIRED' })
  t.equal(decodeJwt(await mintToken(rsa, { ...claims, exp: 42 })).exp, 42, 'explicit claims win')
  const unsecured = mintUnsecuredToken(claims)
  t.equal(decodeProtectedHeader(unsecured).alg, 'none')
  t.ok(unsecured.endsWith('.'), 'empty signature')

  // Key set changes are served on the next fetch.
  const newcomer = await makeKey('ES256')
  server.setKeys([newcomer])
  const doc = (await (await fetch(server.url)).json()) as { keys: JWK[] }
  t.same(doc.keys.map((k) => k.kid), [newcomer.kid])
  server.setKeys([{ kty: 'RSA', kid: 'broken', n: 'AQAB' }])
  t.same(((await (await fetch(server.url)).json()) as { keys: JWK[] }).keys, [{ kty: 'RSA', kid: 'broken', n: 'AQAB' }])

  // Modes, and that every attempt is counted whatever the answer.
  const before = server.fetches
  server.setMode('down')
  t.equal((await fetch(server.url)).status, 503)
  server.setMode('refuse')
  t.equal(await fetchErrorCode(fetch(server.url)), 'ECONNRESET')
  server.setMode('hang')
  t.equal(await fetchErrorCode(fetch(server.url, { signal: AbortSignal.timeout(300) })), 'TimeoutError')
  server.setMode({ delayMs: 100 })
  const started = Date.now()
  t.equal((await fetch(server.url)).status, 200)
  t.ok(Date.now() - started >= 90, 'delayed')
  server.setMode({ body: 'not json', contentType: 'text/html', status: 200 })
  const custom = await fetch(server.url)
  t.equal(custom.headers.get('content-type'), 'text/html')
  t.equal(await custom.text(), 'not json')
  t.equal(server.fetches, before + 5, 'every attempt counted')

  // Discovery is unaffected by default, and has its own mode when targeted.
  t.equal((await fetch(`${server.issuer}/.well-known/openid-configuration`)).status, 200)
  server.setMode('ok')
  server.setMode('down', 'discovery')
  t.equal((await fetch(`${server.issuer}/.well-known/openid-configuration`)).status, 503)
  t.equal((await fetch(server.url)).status, 200)
  server.setMode('ok', 'all')
  t.equal((await fetch(`${server.issuer}/.well-known/openid-configuration`)).status, 200)
  t.equal(server.discoveryFetches, 4)
  t.equal((await fetch(`${server.issuer}/other`)).status, 404)

  // A request left hanging must not keep close() from finishing (teardown would time out).
  server.setMode('hang')
  void fetch(server.url).catch(() => {})
  await waitFor(() => server.fetches === before + 7)
})
