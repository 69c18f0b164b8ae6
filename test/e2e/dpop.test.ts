/**
 * DPoP (RFC 9449) end to end, docs/dpop.md: a real gateway, tokens bound to a client key (`cnf.jkt`),
 * proofs made as a client makes them. Every hostile proof is refused with 401 and a `WWW-Authenticate:
 * DPoP` challenge naming the error and the accepted algorithms, and the upstream sees nothing of it.
 */
import t, { type Test } from 'tap'
import type { Echo } from '../helpers/echo-upstream.js'
import { issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import { send, type TestResponse } from '../helpers/http.js'
import { mintToken, type TestKey } from '../helpers/jwks-server.js'
import { ath, makeProof, makeProofKey, unsignedProof, type ProofKey } from '../helpers/dpop.js'
import { explain } from '../../src/decision/explain.js'
import { openWs, startWsUpstream } from '../helpers/ws-upstream.js'

const TODO = 'https://todo.api'
const ALGS = 'ES256 ES384 RS256 PS256 EdDSA'

async function setUp (t: Test, extra: Record<string, unknown> = {}): Promise<{ gw: TestGateway, echo: Echo, key: TestKey, iss: string }> {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { trustProxy: ['127.0.0.1'] },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [TODO] }],
    upstreams: { echo: { url: echo.url } },
    routes: [
      { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'echo' },
      { id: 'strict', match: { path: '/strict', prefix: true }, upstream: 'echo', requireDpop: true }
    ],
    ...extra
  })
  t.teardown(() => gw.close())
  return { gw, echo, key, iss: jwks.issuer }
}

/** A 401 with the DPoP challenge for `code`, and nothing upstream. */
function assertRefused (t: Test, res: TestResponse, echo: Echo, before: number, code: string, label: string): void {
  t.equal(res.status, 401, `${label}: 401`)
  t.equal(res.json?.error, code, `${label}: ${code}`)
  t.match(res.headers['www-authenticate'], new RegExp(`^DPoP realm="scopegate", error="${code}", error_description="[^"]+", algs="${ALGS}"$`), `${label}: DPoP challenge`)
  t.equal(res.headers['cache-control'], 'no-store', `${label}: no-store`)
  t.equal(echo.received.length, before, `${label}: the upstream saw nothing`)
}

t.test('a DPoP-bound token with a good proof is forwarded; each hostile proof is refused', async (t) => {
  const { gw, echo, key, iss } = await setUp(t)
  const client = await makeProofKey('ES256')
  const other = await makeProofKey('ES256')
  const token = await mintToken(key, { iss, aud: TODO, sub: 'alice', scope: 'read', cnf: { jkt: client.jkt } })
  const unbound = await mintToken(key, { iss, aud: TODO, sub: 'bob', scope: 'read' })
  const url = `${gw.proxyUrl}/todos/1`
  const now = Math.floor(Date.now() / 1000)
  const proofFor = async (options: Partial<Parameters<typeof makeProof>[1]> = {}, signer: ProofKey = client): Promise<string> =>
    await makeProof(signer, { htm: 'GET', htu: url, token, ...options })
  const dpopGet = async (proofs: string[], bearerToken = token, scheme = 'DPoP', target = '/todos/1'): Promise<TestResponse> =>
    await send(gw.proxyUrl, target, { headers: ['host', new URL(gw.proxyUrl).host, 'authorization', `${scheme} ${bearerToken}`, ...proofs.flatMap((p) => ['DPoP', p])] })

  const good = await proofFor()
  const first = await dpopGet([good])
  t.equal(first.status, 200, 'a good proof: forwarded')
  t.equal(echo.received.length, 1, 'the upstream saw the request')
  t.equal(echo.received[0]?.headers['x-auth-subject'], 'alice', 'with the identity of the bound token')

  const normalized = await proofFor({ htu: `HTTP://127.0.0.1:${new URL(gw.proxyUrl).port}/todos/./1?page=2#top` })
  t.equal((await dpopGet([normalized])).status, 200, 'htu compared after normalization, without query or fragment')

  // Each case names what the decision log must say (its reason or detail), so it fails only for its own reason.
  const cases: Array<[string, () => Promise<TestResponse>, string, string]> = [
    ['a reused jti', async () => await dpopGet([good]), 'invalid_dpop_proof', 'dpop_proof_replayed'],
    ['a wrong htm', async () => await dpopGet([await proofFor({ htm: 'POST' })]), 'invalid_dpop_proof', 'htm'],
    ['a proof for another path', async () => await dpopGet([await proofFor({ htu: `${gw.proxyUrl}/todos/2` })]), 'invalid_dpop_proof', 'htu does not name'],
    ['a proof for another host', async () => await dpopGet([await proofFor({ htu: 'http://api.example.com/todos/1' })]), 'invalid_dpop_proof', 'htu does not name'],
    ['a proof for https when the request came over http', async () => await dpopGet([await proofFor({ htu: url.replace('http:', 'https:') })]), 'invalid_dpop_proof', 'htu does not name'],
    ['a stale iat', async () => await dpopGet([await proofFor({ iat: now - 600 })]), 'invalid_dpop_proof', 'too old'],
    ['a future iat', async () => await dpopGet([await proofFor({ iat: now + 600 })]), 'invalid_dpop_proof', 'in the future'],
    ['a missing ath', async () => await dpopGet([await proofFor({ claims: { ath: undefined } })]), 'invalid_dpop_proof', 'ath missing'],
    ['the ath of another token', async () => await dpopGet([await proofFor({ claims: { ath: ath(unbound) } })]), 'invalid_dpop_proof', 'ath missing or not'],
    ['a missing jti', async () => await dpopGet([await proofFor({ claims: { jti: undefined } })]), 'invalid_dpop_proof', 'jti missing'],
    ['typ jwt', async () => await dpopGet([await proofFor({ header: { typ: 'JWT' } })]), 'invalid_dpop_proof', 'typ'],
    ['a private key in the jwk', async () => await dpopGet([await proofFor({ header: { jwk: client.privateJwk } })]), 'invalid_dpop_proof', 'private key members'],
    ['a jwk that did not sign the proof', async () => await dpopGet([await proofFor({ header: { jwk: other.publicJwk } })]), 'invalid_dpop_proof', 'signature does not verify'],
    ['alg none', async () => await dpopGet([unsignedProof({ typ: 'dpop+jwt', alg: 'none', jwk: client.publicJwk }, { jti: 'n', htm: 'GET', htu: url, iat: now, ath: ath(token) })]), 'invalid_dpop_proof', 'alg "none"'],
    ['alg HS256', async () => await dpopGet([unsignedProof({ typ: 'dpop+jwt', alg: 'HS256', jwk: { kty: 'oct', k: 'c2VjcmV0' } }, { jti: 'h', htm: 'GET', htu: url, iat: now, ath: ath(token) })]), 'invalid_dpop_proof', 'alg "HS256"'],
    ['no proof', async () => await dpopGet([]), 'invalid_dpop_proof', 'dpop_proof_missing'],
    ['two proofs', async () => await dpopGet([await proofFor(), await proofFor()]), 'invalid_dpop_proof', 'dpop_proof_duplicated'],
    ['a proof that is not a JWT', async () => await dpopGet(['not-a-jwt']), 'invalid_dpop_proof', 'not a JWT'],
    ['a thumbprint mismatch: a good proof by another key', async () => await dpopGet([await proofFor({}, other)]), 'invalid_token', 'cnf.jkt is not'],
    ['an unbound token sent as DPoP', async () => await dpopGet([await proofFor({ token: unbound })], unbound), 'invalid_token', 'no cnf.jkt'],
    ['a DPoP-bound token sent as Bearer', async () => await dpopGet([], token, 'Bearer'), 'invalid_token', 'dpop_bound_token_as_bearer'],
    ['a DPoP-bound token sent as Bearer with a good proof', async () => await dpopGet([await proofFor()], token, 'Bearer'), 'invalid_token', 'dpop_bound_token_as_bearer']
  ]
  for (const [label, request, code, why] of cases) {
    const before = echo.received.length
    assertRefused(t, await request(), echo, before, code, label)
    const line = gw.decisions().at(-1) ?? {}
    t.ok(`${String(line.reason)} ${String(line.detail)}`.includes(why), `${label}: the decision log says ${why}`)
  }

  // The route that requires DPoP refuses a plain Bearer token, and asks for DPoP when nothing is sent.
  let before = echo.received.length
  assertRefused(t, await send(gw.proxyUrl, '/strict', { headers: { authorization: `Bearer ${unbound}` } }), echo, before, 'invalid_token', 'Bearer on a DPoP route')
  before = echo.received.length
  const bare = await send(gw.proxyUrl, '/strict')
  t.equal(bare.status, 401, 'no credentials on a DPoP route: 401')
  t.equal(bare.headers['www-authenticate'], `DPoP realm="scopegate", algs="${ALGS}"`, 'the bare DPoP challenge')
  t.equal(echo.received.length, before, 'the upstream saw nothing')
  t.equal((await send(gw.proxyUrl, '/todos/1', { headers: { authorization: `Bearer ${unbound}` } })).status, 200, 'an unbound Bearer token elsewhere: still fine')

  t.notOk(gw.rawLog().includes(token), 'the token never reaches the log')
  t.notOk(gw.rawLog().includes(good), 'nor the proof')
  const reasons = new Set(gw.decisions().map((line) => line.reason))
  for (const reason of ['dpop_proof_replayed', 'dpop_proof_invalid', 'dpop_binding_mismatch', 'dpop_bound_token_as_bearer', 'dpop_required']) {
    t.ok(reasons.has(reason), `the decision log names ${reason}`)
  }
})

t.test('server nonces: a proof without the nonce gets use_dpop_nonce and a DPoP-Nonce to retry with', async (t) => {
  const { gw, echo, key, iss } = await setUp(t, { dpop: { nonce: { enabled: true } } })
  const client = await makeProofKey('EdDSA')
  const token = await mintToken(key, { iss, aud: TODO, sub: 'alice', cnf: { jkt: client.jkt } })
  const htu = `${gw.proxyUrl}/todos`
  const request = async (proof: string): Promise<TestResponse> =>
    await send(gw.proxyUrl, '/todos', { method: 'POST', headers: { authorization: `DPoP ${token}`, dpop: proof }, body: '{}' })

  const without = await request(await makeProof(client, { htm: 'POST', htu, token }))
  assertRefused(t, without, echo, 0, 'use_dpop_nonce', 'no nonce')
  const nonce = without.headers['dpop-nonce']
  t.type(nonce, 'string', 'a nonce to retry with')
  assertRefused(t, await request(await makeProof(client, { htm: 'POST', htu, token, claims: { nonce: `${String(nonce)}x` } })), echo, 0, 'use_dpop_nonce', 'a forged nonce')
  const retried = await request(await makeProof(client, { htm: 'POST', htu, token, claims: { nonce } }))
  t.equal(retried.status, 200, 'the retry with the nonce is forwarded')
  t.equal(echo.received.length, 1, 'once')
})

t.test('forward auth: htu is checked against the scheme and host the ingress names', async (t) => {
  const { gw, key, iss } = await setUp(t)
  const client = await makeProofKey('ES256')
  const token = await mintToken(key, { iss, aud: TODO, sub: 'alice', cnf: { jkt: client.jkt } })
  const ask = async (htu: string, headers: Record<string, string>): Promise<TestResponse> =>
    await send(gw.adminUrl, '/decisions', {
      headers: { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/todos/1', authorization: `DPoP ${token}`, dpop: await makeProof(client, { htm: 'GET', htu, token }), ...headers }
    })

  const traefik = await ask('https://api.example.com/todos/1', { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example.com' })
  t.equal(traefik.status, 200, 'X-Forwarded-Proto and X-Forwarded-Host name the origin')
  t.equal(traefik.headers['cache-control'], 'no-store', 'an answer to a DPoP request is never cached by the ingress')
  const nginx = await ask('https://api.example.com/todos/1', { 'x-original-url': 'https://api.example.com/todos/1', 'x-original-method': 'GET' })
  t.equal(nginx.status, 200, 'X-Original-URL names the origin')
  const wrongHost = await ask('https://evil.example.com/todos/1', { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example.com' })
  t.equal(wrongHost.status, 401, 'a proof for another host: 401')
  t.equal(wrongHost.json?.error, 'invalid_dpop_proof', 'invalid_dpop_proof')
  t.match(wrongHost.headers['www-authenticate'], /^DPoP /, 'with the DPoP challenge')
  const noScheme = await ask('https://api.example.com/todos/1', {})
  t.equal(noScheme.status, 401, 'without the scheme from the ingress the proof cannot be checked: 401')
})

t.test('explain shows the DPoP step: the proof key when it passes, the check that failed when not', async (t) => {
  const { gw, echo, key, iss } = await setUp(t)
  const client = await makeProofKey('ES256')
  const token = await mintToken(key, { iss, aud: TODO, sub: 'alice', cnf: { jkt: client.jkt } })
  const origin = 'https://api.example.com'
  const engine = gw.gateway.current()
  const config = engine.config
  const run = async (proof: string): Promise<Awaited<ReturnType<typeof explain>>> =>
    await explain(config, { method: 'GET', path: '/todos/1', ip: '127.0.0.1', token, dpop: { proofs: [proof], origin }, engine })

  const passed = await run(await makeProof(client, { htm: 'GET', htu: `${origin}/todos/1`, token }))
  t.ok(passed.allowed, 'allowed')
  t.ok(passed.lines.some((line) => line.startsWith('dpop') && line.includes(`key ${client.jkt} pass`)), 'the dpop line names the proof key')
  const failed = await run(await makeProof(client, { htm: 'GET', htu: `${origin}/admin`, token }))
  t.notOk(failed.allowed, 'denied')
  t.ok(failed.lines.some((line) => line.startsWith('dpop') && line.includes('invalid_dpop_proof') && line.includes('htu does not name')), 'the dpop line says which check failed')
  const bearer = await explain(config, { method: 'GET', path: '/todos/1', ip: '127.0.0.1', token, engine })
  t.ok(bearer.lines.some((line) => line.startsWith('dpop') && line.includes('Bearer scheme') && line.includes('dpop_bound_token_as_bearer')), 'a bound token as Bearer: the dpop line says so')
  t.equal(echo.received.length, 0, 'explain sends nothing upstream')
})

t.test('a WebSocket handshake with a DPoP token is checked like any request', async (t) => {
  const { key, jwks } = await issuerAndEcho(t)
  const upstream = await startWsUpstream()
  t.teardown(() => upstream.close())
  const gw = await startGateway({
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [TODO] }],
    upstreams: { ws: { url: upstream.url } },
    routes: [{ id: 'live', match: { path: '/live', prefix: true }, upstream: 'ws', websocket: { enabled: true } }]
  })
  t.teardown(() => gw.close())
  const client = await makeProofKey('ES256')
  const token = await mintToken(key, { iss: jwks.issuer, aud: TODO, sub: 'alice', cnf: { jkt: client.jkt } })
  const wsUrl = `${gw.proxyUrl.replace('http:', 'ws:')}/live`
  // The handshake is a GET to the http(s) URL of the same origin (RFC 9449 §4.3 compares htu with the request URI).
  const htu = `${gw.proxyUrl}/live`

  const good = await openWs(wsUrl, { headers: { authorization: `DPoP ${token}`, dpop: await makeProof(client, { htm: 'GET', htu, token }) } })
  t.ok(good.open, 'a good proof: the WebSocket opens')
  if (good.open) good.socket.close()
  t.equal(upstream.handshakes.length, 1, 'the upstream saw the handshake')

  const wrong = await openWs(wsUrl, { headers: { authorization: `DPoP ${token}`, dpop: await makeProof(client, { htm: 'GET', htu: `${gw.proxyUrl}/other`, token }) } })
  t.notOk(wrong.open, 'a proof for another URL: refused')
  if (!wrong.open) {
    t.equal(wrong.status, 401, '401')
    t.equal(wrong.json?.error, 'invalid_dpop_proof', 'invalid_dpop_proof')
    t.match(wrong.headers['www-authenticate'], /^DPoP /, 'with the DPoP challenge')
  }
  t.equal(upstream.handshakes.length, 1, 'the upstream saw nothing more')
})
