/**
 * Hostile and unusual requests, one table per class (docs/security.md lists them with the standard or
 * incident behind each): forged and malformed tokens, odd ways of carrying the credential, paths that try
 * to walk around a route's policy, request shapes Node refuses, and forward-auth calls. Every case checks
 * what the client saw (status, `error` code, the RFC 6750 challenge) and what the upstream saw: nothing on
 * a denial, exactly the judged request on an allow. After each table the gateway still serves a valid
 * request.
 *
 * The fixture: an IdP whose JWKS holds RS256 `k1` and ES256 `k2`, issuer audience `gw`, the RFC 9068
 * profile (`requireTyp`), a clock tolerance of 60 s; `/api/orders/*` needs `orders:read` for GET and
 * `orders:write` for writes; `/api/admin/*` needs `admin`, denies client `mobile` and audience `partner`;
 * `/public/*` needs nothing. The valid token T carries every RFC 9068 claim and `scope: orders:read`.
 */
import { createHmac, createPublicKey, generateKeyPairSync, KeyObject, sign } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import t, { type Test } from 'tap'
import { startEcho } from '../helpers/echo-upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { send, type TestResponse } from '../helpers/http.js'
import { makeKey, mintToken, startJwksServer, type JwksMode, type JwksServer, type TestKey } from '../helpers/jwks-server.js'

/** The reason each token of section A is refused for, as the decision log names it: the check that caught it. */
const REASONS = new Map<string, string>([
  ['1: alg none, empty signature', 'token_malformed'],
  ['1: alg none, T\'s signature', 'token_algorithm_not_allowed'],
  ['1: alg None, empty signature', 'token_malformed'],
  ['1: alg None, T\'s signature', 'token_algorithm_not_allowed'],
  ['1: alg NONE, empty signature', 'token_malformed'],
  ['1: alg NONE, T\'s signature', 'token_algorithm_not_allowed'],
  ['1: alg nOnE, empty signature', 'token_malformed'],
  ['1: alg nOnE, T\'s signature', 'token_algorithm_not_allowed'],
  ['2: HS256 keyed with the public key as SPKI PEM', 'token_algorithm_not_allowed'],
  ['2: HS256 keyed with the public key as SPKI PEM without its trailing newline', 'token_algorithm_not_allowed'],
  ['2: HS256 keyed with the public key as PKCS#1 PEM', 'token_algorithm_not_allowed'],
  ['2: HS256 keyed with the public key as JWK JSON', 'token_algorithm_not_allowed'],
  ['2: HS256 keyed with the public key as DER', 'token_algorithm_not_allowed'],
  ['3: embedded jwk, no kid', 'token_signature_invalid'],
  ['3: embedded jwk, kid k1', 'token_signature_invalid'],
  ['4: jku to a loopback listener, unknown kid', 'token_key_unknown'],
  ['4: jku to a loopback listener, kid k1', 'token_signature_invalid'],
  ['4: x5u to a loopback listener', 'token_key_unknown'],
  ['5: kid "../../../../dev/null"', 'token_key_unknown'],
  ['5: kid "x\' UNION SELECT \'1\';--"', 'token_key_unknown'],
  ['5: kid "|sleep 10"', 'token_key_unknown'],
  ['5: kid "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"…', 'token_key_unknown'],
  ['5: kid "a\\r\\n{\\"msg\\":\\"forged\\"}"', 'token_key_unknown'],
  ['5: kid a number', 'token_malformed'],
  ['5: kid an object', 'token_malformed'],
  ['5: kid null', 'token_malformed'],
  ['6: crit ["foo"]', 'token_malformed'],
  ['6: crit []', 'token_malformed'],
  ['6: crit ["kid"]', 'token_malformed'],
  ['6: b64 false with crit ["b64"]', 'token_malformed'],
  ['6: b64 false without crit', 'token_malformed'],
  ['8: no iss', 'token_issuer_unknown'],
  ['8: no aud', 'token_claim_invalid'],
  ['8: no sub', 'token_claim_invalid'],
  ['8: no client_id', 'token_claim_invalid'],
  ['8: no iat', 'token_claim_invalid'],
  ['8: no jti', 'token_claim_invalid'],
  ['8: no exp', 'token_claim_invalid'],
  ['9: typ JWT', 'token_type_invalid'],
  ['9: no typ', 'token_type_invalid'],
  ['9: typ at+jwt; x=1', 'token_type_invalid'],
  ['9: an OIDC ID token of the same IdP (typ JWT, aud the client id)', 'token_type_invalid'],
  ['9: an ID token dressed as an access token (typ at+jwt, aud the client id)', 'token_audience_invalid'],
  ['10: exp = now, no clock tolerance (strict issuer)', 'token_expired'],
  ['10b: exp = now - 2S', 'token_expired'],
  ['10b: nbf = now + 2S', 'token_not_yet_valid'],
  ['10b: exp a string', 'token_claim_invalid'],
  ['10b: exp null', 'token_claim_invalid'],
  ['10b: exp an array', 'token_claim_invalid'],
  ['11: iat a day in the future', 'token_issued_in_future'],
  ['12: iss with a trailing slash', 'token_issuer_unknown'],
  ['12: iss in upper case', 'token_issuer_unknown'],
  ['12: iss with another scheme', 'token_issuer_unknown'],
  ['12: iss as an array', 'token_issuer_unknown'],
  ['13: aud "other"', 'token_audience_invalid'],
  ['13: aud []', 'token_claim_invalid'],
  ['13: aud "GW"', 'token_audience_invalid'],
  ['13: aud [["gw"]]', 'token_claim_invalid'],
  ['13: aud ["gw", 5]', 'token_claim_invalid'],
  ['13: no aud', 'token_claim_invalid'],
  ['claim types: numeric sub', 'token_claim_invalid'],
  ['claim types: client_id an array', 'token_claim_invalid'],
  ['claim types: scope an array holding an object', 'token_claim_invalid'],
  ['18: a 5-segment JWE, PBES2 with p2c 2147483647', 'token_malformed'],
  ['18a: cty JWT wrapping T', 'token_malformed'],
  ['20: a.b', 'token_malformed'],
  ['20: four segments', 'token_malformed'],
  ['20: empty segments', 'token_malformed'],
  ['20: a header that is not JSON', 'token_malformed'],
  ['20: a payload that is an array', 'token_malformed'],
  ['21: ES256 with r = s = 0', 'token_signature_invalid'],
  ['21: ES256 with a DER-encoded signature', 'token_signature_invalid'],
  ['22: a 15 KB token', 'token_malformed']
])

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const S = 60

/** A JWS over exactly these header and payload texts (duplicate members and all), signed by `key`. */
function signRaw (key: TestKey, header: string, payload: string): string {
  const input = `${b64(header)}.${b64(payload)}`
  const privateKey = key.privateKey instanceof KeyObject ? key.privateKey : KeyObject.from(key.privateKey as Parameters<typeof KeyObject.from>[0])
  const signature = key.alg === 'ES256'
    ? sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
    : sign('sha256', Buffer.from(input), privateKey)
  return `${input}.${signature.toString('base64url')}`
}

/** Everything a raw socket receives for `request` until the server closes it or `ms` pass. */
function rawExchange (port: number, request: string, ms = 2000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    let received = ''
    const done = (): void => { clearTimeout(timer); socket.destroy(); resolve(received) }
    const timer = setTimeout(done, ms)
    socket.on('data', (chunk: Buffer) => { received += chunk.toString('latin1') })
    socket.on('end', done)
    socket.on('error', done)
    socket.write(request)
  })
}

t.test('security cases against one gateway', async (t) => {
  const k1 = await makeKey('RS256', 'k1')
  const k2 = await makeKey('ES256', 'k2')
  const attacker = await makeKey('RS256', 'k1')
  const jwks = await startJwksServer([k1, k2])
  t.teardown(() => jwks.close())
  const downJwks = await startJwksServer([k1])
  downJwks.setMode('down')
  t.teardown(() => downJwks.close())
  const echo = await startEcho()
  t.teardown(() => echo.close())
  /** A listener a token may point at (jku, x5u): it must never be asked anything. */
  const lure = await startEcho()
  t.teardown(() => lure.close())

  const ISS = jwks.issuer
  const STRICT_ISS = `${ISS}/strict`
  const gw = await startGateway({
    server: { trustProxy: ['127.0.0.1/32'] },
    issuers: [
      { id: 'idp', issuer: ISS, jwksUri: jwks.url, algorithms: ['RS256', 'ES256'], audiences: ['gw', 'partner'], clockTolerance: `${S}s`, requireTyp: true },
      { id: 'strict', issuer: STRICT_ISS, jwksUri: jwks.url, algorithms: ['RS256'], audiences: ['gw'], clockTolerance: '0s', requireTyp: true },
      { id: 'down', issuer: downJwks.issuer, jwksUri: downJwks.url, algorithms: ['RS256'], audiences: ['gw'] }
    ],
    upstreams: { echo: { url: echo.url } },
    routes: [
      { id: 'orders-read', match: { path: '/api/orders', prefix: true, methods: ['GET'] }, upstream: 'echo', policy: { scopes: { require: ['orders:read'] } } },
      { id: 'orders-write', match: { path: '/api/orders', prefix: true, methods: ['POST', 'PUT', 'PATCH', 'DELETE'] }, upstream: 'echo', policy: { scopes: { require: ['orders:write'] } } },
      { id: 'admin', match: { path: '/api/admin', prefix: true }, upstream: 'echo', policy: { scopes: { require: ['admin'] }, clients: { deny: ['mobile'] }, audience: { deny: ['partner'] } } },
      { id: 'public', match: { path: '/public', prefix: true }, upstream: 'echo', auth: 'none' }
    ]
  })
  t.teardown(() => gw.close())
  const proxyPort = Number(new URL(gw.proxyUrl).port)

  const now = (): number => Math.floor(Date.now() / 1000)
  const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> =>
    ({ iss: ISS, aud: 'gw', sub: 'alice', client_id: 'web', scope: 'orders:read', jti: 'jti-1', iat: now(), exp: now() + 600, ...extra })
  const mint = (extra: Record<string, unknown> = {}, header: Record<string, unknown> = {}, key: TestKey = k1): Promise<string> =>
    mintToken(key, claims(extra), { header })
  const T = await mint()
  const headerOf = (token: string): string => token.split('.')[0] ?? ''
  const payloadOf = (token: string): string => token.split('.')[1] ?? ''
  const signatureOf = (token: string): string => token.split('.')[2] ?? ''

  /** Every token sent: none may come back in a body or a log line. */
  const sent: string[] = []
  const auth = (value: string): Record<string, string> => { sent.push(value); return { authorization: value } }

  /** Asserts a denial: status, code and challenge as RFC 6750 §3 has them, and the upstream saw nothing. */
  async function denied (t: Test, target: string, headers: Record<string, string>, status: number, code: string, method = 'GET'): Promise<TestResponse> {
    const before = echo.received.length
    const res = await send(gw.proxyUrl, target, { method, headers })
    t.equal(res.status, status, 'status')
    const challenge = res.headers['www-authenticate'] ?? ''
    // A HEAD answer has no body: its code is read back from the challenge.
    if (method === 'HEAD') t.equal(/error="([a-z_]+)"/.exec(challenge)?.[1] ?? 'unauthorized', code, 'error code')
    else t.equal(res.json?.error, code, 'error code')
    if (code === 'unauthorized') t.equal(challenge, 'Bearer realm="scopegate"', 'a bare challenge: no error for a request without credentials')
    else if (status === 401 || status === 403) t.match(challenge, new RegExp(`^Bearer realm="scopegate", error="${code}", error_description="[^"\\r\\n]+"`), 'the challenge names the error')
    t.notMatch(challenge, /[\r\n]/, 'the challenge has no CR or LF')
    t.notOk(sent.some((token) => token.length > 40 && res.body.includes(token.replace(/^\S+\s+/, ''))), 'the body does not echo a token')
    t.notMatch(res.body, /127\.0\.0\.1:\d+/, 'the body names no internal host:port')
    t.equal(echo.received.length, before, 'the upstream received nothing')
    return res
  }

  /** Asserts an allow: 200, and the upstream received exactly this request once. */
  async function allowed (t: Test, target: string, headers: Record<string, string>, expected: { path: string, route: string, scopes?: string }, method = 'GET'): Promise<void> {
    const before = echo.received.length
    const res = await send(gw.proxyUrl, target, { method, headers })
    t.equal(res.status, 200, 'status 200')
    t.equal(echo.received.length, before + 1, 'the upstream received it once')
    const seen = echo.received.at(-1)
    t.equal(seen?.url, expected.path, 'the upstream received the path that was judged')
    t.equal(seen?.method, method, 'and the method')
    t.equal(seen?.headers['x-auth-route'], expected.route, 'under the route that judged it')
    if (expected.scopes !== undefined) t.equal(seen?.headers['x-auth-scopes'], expected.scopes, 'with the scopes that were judged')
  }

  const stillServes = async (t: Test): Promise<void> => {
    await t.test('the gateway still answers a valid request', async (t) => {
      await allowed(t, '/api/orders/1', auth(`Bearer ${T}`), { path: '/api/orders/1', route: 'orders-read', scopes: 'orders:read' })
    })
  }

  t.test('baseline: T reaches /api/orders with its identity', async (t) => {
    await allowed(t, '/api/orders/1', auth(`Bearer ${T}`), { path: '/api/orders/1', route: 'orders-read', scopes: 'orders:read' })
    t.equal(echo.received.at(-1)?.headers['x-auth-subject'], 'alice')
  })

  t.test('A. token validation: every forged, malformed or mistyped token is 401 invalid_token', async (t) => {
    const h = (header: Record<string, unknown>): string => b64({ alg: 'RS256', kid: 'k1', typ: 'at+jwt', ...header })
    const spki = createPublicKey({ key: k1.publicJwk as import('node:crypto').JsonWebKey, format: 'jwk' })
    const spkiPem = spki.export({ type: 'spki', format: 'pem' }).toString()
    const hmacForms: Array<[name: string, secret: Buffer | string]> = [
      ['SPKI PEM', spkiPem],
      ['SPKI PEM without its trailing newline', spkiPem.trimEnd()],
      ['PKCS#1 PEM', spki.export({ type: 'pkcs1', format: 'pem' }).toString()],
      ['JWK JSON', JSON.stringify(k1.publicJwk)],
      ['DER', spki.export({ type: 'spki', format: 'der' })]
    ]
    const hs256 = (secret: Buffer | string, kid = 'k1'): string => {
      const input = `${b64({ alg: 'HS256', kid, typ: 'at+jwt' })}.${payloadOf(T)}`
      return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
    }
    const embedded = async (kid?: string): Promise<string> => mint({}, { jwk: attacker.publicJwk, kid }, attacker)
    const jku = await mint({}, { jku: `${lure.url}/jwks.json`, kid: 'lure-kid' }, attacker)
    const jkuK1 = await mint({}, { jku: `${lure.url}/jwks.json` }, attacker)
    const x5u = await mint({}, { x5u: `${lure.url}/cert.pem`, kid: 'lure-kid' }, attacker)
    const full = claims()
    const withoutClaim = (name: string): Promise<string> => mint({ [name]: undefined })
    const es = await mint({}, { kid: 'k2' }, k2)
    const esInput = es.split('.').slice(0, 2).join('.')
    const esSig = Buffer.from(signatureOf(es), 'base64url')
    const der = (): Buffer => {
      const int = (bytes: Buffer): Buffer => {
        let b = bytes
        while (b.length > 1 && b[0] === 0 && ((b[1] ?? 0) & 0x80) === 0) b = b.subarray(1)
        if (((b[0] ?? 0) & 0x80) !== 0) b = Buffer.concat([Buffer.from([0]), b])
        return Buffer.concat([Buffer.from([0x02, b.length]), b])
      }
      const body = Buffer.concat([int(esSig.subarray(0, 32)), int(esSig.subarray(32))])
      return Buffer.concat([Buffer.from([0x30, body.length]), body])
    }

    const cases: Array<[id: string, name: string, token: string]> = [
      // 1: alg none, any case, with an empty signature and with T's
      ...['none', 'None', 'NONE', 'nOnE'].flatMap((alg): Array<[string, string, string]> => [
        ['1', `alg ${alg}, empty signature`, `${h({ alg })}.${payloadOf(T)}.`],
        ['1', `alg ${alg}, T's signature`, `${h({ alg })}.${payloadOf(T)}.${signatureOf(T)}`]
      ]),
      // 2: HS256 keyed with the IdP's public key
      ...hmacForms.map(([form, secret]): [string, string, string] => ['2', `HS256 keyed with the public key as ${form}`, hs256(secret)]),
      // 3: an embedded jwk is never used
      ['3', 'embedded jwk, no kid', await embedded(undefined)],
      ['3', 'embedded jwk, kid k1', await embedded('k1')],
      // 4: jku and x5u are never fetched
      ['4', 'jku to a loopback listener, unknown kid', jku],
      ['4', 'jku to a loopback listener, kid k1', jkuK1],
      ['4', 'x5u to a loopback listener', x5u],
      // 5: hostile kids
      ...['../../../../dev/null', "x' UNION SELECT '1';--", '|sleep 10', 'k'.repeat(8192), 'a\r\n{"msg":"forged"}'].map((kid): [string, string, string] =>
        ['5', `kid ${JSON.stringify(kid.slice(0, 30))}${kid.length > 30 ? '…' : ''}`, `${h({ kid })}.${payloadOf(T)}.${signatureOf(T)}`]),
      ['5', 'kid a number', `${h({ kid: 7 })}.${payloadOf(T)}.${signatureOf(T)}`],
      ['5', 'kid an object', `${h({ kid: { k: 1 } })}.${payloadOf(T)}.${signatureOf(T)}`],
      ['5', 'kid null', `${h({ kid: null })}.${payloadOf(T)}.${signatureOf(T)}`],
      // 6: crit and b64
      ['6', 'crit ["foo"]', signRaw(k1, JSON.stringify({ alg: 'RS256', kid: 'k1', typ: 'at+jwt', crit: ['foo'], foo: 1 }), JSON.stringify(full))],
      ['6', 'crit []', signRaw(k1, JSON.stringify({ alg: 'RS256', kid: 'k1', typ: 'at+jwt', crit: [] }), JSON.stringify(full))],
      ['6', 'crit ["kid"]', signRaw(k1, JSON.stringify({ alg: 'RS256', kid: 'k1', typ: 'at+jwt', crit: ['kid'] }), JSON.stringify(full))],
      ['6', 'b64 false with crit ["b64"]', signRaw(k1, JSON.stringify({ alg: 'RS256', kid: 'k1', typ: 'at+jwt', b64: false, crit: ['b64'] }), JSON.stringify(full))],
      ['6', 'b64 false without crit', signRaw(k1, JSON.stringify({ alg: 'RS256', kid: 'k1', typ: 'at+jwt', b64: false }), JSON.stringify(full))],
      // 8: each RFC 9068 §2.2 claim missing
      ...(await Promise.all(['iss', 'aud', 'sub', 'client_id', 'iat', 'jti', 'exp'].map(async (name): Promise<[string, string, string]> => ['8', `no ${name}`, await withoutClaim(name)]))),
      // 9: typ
      ['9', 'typ JWT', await mint({}, { typ: 'JWT' })],
      ['9', 'no typ', await mint({}, { typ: undefined })],
      ['9', 'typ at+jwt; x=1', await mint({}, { typ: 'at+jwt; x=1' })],
      ['9', 'an OIDC ID token of the same IdP (typ JWT, aud the client id)', await mint({ aud: 'web', nonce: 'n', scope: undefined }, { typ: 'JWT' })],
      ['9', 'an ID token dressed as an access token (typ at+jwt, aud the client id)', await mint({ aud: 'web', nonce: 'n', scope: undefined })],
      // 10, 10b: time
      ['10', 'exp = now, no clock tolerance (strict issuer)', await mint({ iss: STRICT_ISS, exp: now() })],
      ['10b', 'exp = now - 2S', await mint({ exp: now() - 2 * S })],
      ['10b', 'nbf = now + 2S', await mint({ nbf: now() + 2 * S })],
      ['10b', 'exp a string', await mint({ exp: String(now() + 600) })],
      ['10b', 'exp null', await mint({ exp: null })],
      ['10b', 'exp an array', await mint({ exp: [now() + 600] })],
      // 11: iat in the future
      ['11', 'iat a day in the future', await mint({ iat: now() + 86_400, exp: now() + 86_400 + 600 })],
      // 12: iss is matched exactly
      ['12', 'iss with a trailing slash', await mint({ iss: `${ISS}/` })],
      ['12', 'iss in upper case', await mint({ iss: ISS.toUpperCase() })],
      ['12', 'iss with another scheme', await mint({ iss: ISS.replace(/^http:/, 'https:') })],
      ['12', 'iss as an array', await mint({ iss: [ISS] })],
      // 13: aud
      ['13', 'aud "other"', await mint({ aud: 'other' })],
      ['13', 'aud []', await mint({ aud: [] })],
      ['13', 'aud "GW"', await mint({ aud: 'GW' })],
      ['13', 'aud [["gw"]]', await mint({ aud: [['gw']] })],
      ['13', 'aud ["gw", 5]', await mint({ aud: ['gw', 5] })],
      ['13', 'no aud', await mint({ aud: undefined })],
      // claims of the wrong type (docs/config.md#claim-types)
      ['claim types', 'numeric sub', await mint({ sub: 12345 })],
      ['claim types', 'client_id an array', await mint({ client_id: ['web'] })],
      ['claim types', 'scope an array holding an object', await mint({ scope: ['orders:read', { admin: true }] })],
      // 18, 18a: JWE and nesting
      ['18', 'a 5-segment JWE, PBES2 with p2c 2147483647', `${b64({ alg: 'PBES2-HS512+A256KW', enc: 'A256GCM', p2c: 2147483647, p2s: 'c2FsdA' })}.${b64('k')}.${b64('iv')}.${b64('ct')}.${b64('tag')}`],
      ['18a', 'cty JWT wrapping T', signRaw(k1, JSON.stringify({ alg: 'RS256', kid: 'k1', typ: 'at+jwt', cty: 'JWT' }), JSON.stringify(T))],
      // 20: malformed
      ['20', 'a.b', 'a.b'],
      ['20', 'four segments', `${T}.${signatureOf(T)}`],
      ['20', 'empty segments', `${headerOf(T)}..${signatureOf(T)}`],
      ['20', 'a header that is not JSON', `${b64('not json')}.${payloadOf(T)}.${signatureOf(T)}`],
      ['20', 'a payload that is an array', signRaw(k1, JSON.stringify({ alg: 'RS256', kid: 'k1', typ: 'at+jwt' }), JSON.stringify([full]))],
      // 21: ECDSA signatures
      ['21', 'ES256 with r = s = 0', `${esInput}.${Buffer.alloc(64).toString('base64url')}`],
      ['21', 'ES256 with a DER-encoded signature', `${esInput}.${der().toString('base64url')}`],
      // 22: a 15 KB token
      ['22', 'a 15 KB token', `${'A'.repeat(5000)}.${'A'.repeat(5000)}.${'A'.repeat(5000)}`]
    ]
    for (const [id, name, token] of cases) {
      await t.test(`${id}: ${name}`, async (t) => { await denied(t, '/api/orders/1', auth(`Bearer ${token}`), 401, 'invalid_token') })
      t.equal(gw.decisions().at(-1)?.reason, REASONS.get(`${id}: ${name}`), `${id}: ${name}: the log names the check that refused it`)
    }
    t.equal(lure.received.length, 0, '4: the listener a token pointed at was never asked')
    for (const line of gw.rawLog().split('\n')) t.notOk(line.includes('"msg":"forged"') && !line.startsWith('{'), '5: a kid cannot start a log line')
    t.notOk(gw.rawLog().includes('\n{"msg":"forged"}'), '5: a kid with CR LF does not forge a log line')
    await stillServes(t)
  })

  t.test('A. token validation: what is accepted', async (t) => {
    await t.test('9: typ AT+JWT and application/at+jwt', async (t) => {
      await allowed(t, '/api/orders/1', auth(`Bearer ${await mint({}, { typ: 'AT+JWT' })}`), { path: '/api/orders/1', route: 'orders-read' })
      await allowed(t, '/api/orders/1', auth(`Bearer ${await mint({}, { typ: 'application/at+jwt' })}`), { path: '/api/orders/1', route: 'orders-read' })
    })
    await t.test('10a: exp = now - S/2 and nbf = now + S/2 are within the clock tolerance', async (t) => {
      await allowed(t, '/api/orders/1', auth(`Bearer ${await mint({ exp: now() - S / 2 })}`), { path: '/api/orders/1', route: 'orders-read' })
      await allowed(t, '/api/orders/1', auth(`Bearer ${await mint({ nbf: now() + S / 2 })}`), { path: '/api/orders/1', route: 'orders-read' })
    })
    await t.test('13a: aud ["other", "gw"]', async (t) => {
      await allowed(t, '/api/orders/1', auth(`Bearer ${await mint({ aud: ['other', 'gw'] })}`), { path: '/api/orders/1', route: 'orders-read' })
    })
    await t.test('15a: scope "read  admin" (two spaces) grants admin', async (t) => {
      await allowed(t, '/api/admin/users', auth(`Bearer ${await mint({ scope: 'read  admin' })}`), { path: '/api/admin/users', route: 'admin', scopes: 'read admin' })
    })
    await t.test('17: duplicate members are read last-wins, the same way by the policy and x-auth-scopes', async (t) => {
      const payload = JSON.stringify(claims()).replace(/"scope":"orders:read"/, '"scope":"read","scope":"admin"')
      t.match(payload, /"scope":"read","scope":"admin"/)
      await allowed(t, '/api/admin/users', auth(`Bearer ${signRaw(k1, '{"alg":"RS256","kid":"k1","typ":"at+jwt"}', payload)}`), { path: '/api/admin/users', route: 'admin', scopes: 'admin' })
      const reversed = payload.replace('"scope":"read","scope":"admin"', '"scope":"admin","scope":"read"')
      await denied(t, '/api/admin/users', auth(`Bearer ${signRaw(k1, '{"alg":"RS256","kid":"k1","typ":"at+jwt"}', reversed)}`), 403, 'insufficient_scope')
      // The header read last-wins too: the alg verified is the alg the header ends with.
      await denied(t, '/api/orders/1', auth(`Bearer ${signRaw(k1, '{"alg":"RS256","alg":"none","kid":"k1","typ":"at+jwt"}', JSON.stringify(claims()))}`), 401, 'invalid_token')
      await allowed(t, '/api/orders/1', auth(`Bearer ${signRaw(k1, '{"alg":"none","alg":"RS256","kid":"k1","typ":"at+jwt"}', JSON.stringify(claims()))}`), { path: '/api/orders/1', route: 'orders-read' })
    })
    await t.test('21: a genuine ES256 token of k2 passes (the refusals above are about the signature)', async (t) => {
      await allowed(t, '/api/orders/1', auth(`Bearer ${await mint({}, { kid: 'k2' }, k2)}`), { path: '/api/orders/1', route: 'orders-read' })
    })
  })

  t.test('A. 15: scopes are space-delimited and case-sensitive: 403 insufficient_scope, scope="admin"', async (t) => {
    for (const scope of ['administrator', 'read admin-lite', 'ADMIN', 'read,admin']) {
      await t.test(`scope ${JSON.stringify(scope)}`, async (t) => {
        const res = await denied(t, '/api/admin/users', auth(`Bearer ${await mint({ scope })}`), 403, 'insufficient_scope')
        t.match(res.headers['www-authenticate'], /, scope="admin"$/)
      })
    }
    await t.test('the admin route also refuses client mobile and audience partner', async (t) => {
      await denied(t, '/api/admin/users', auth(`Bearer ${await mint({ scope: 'admin', client_id: 'mobile' })}`), 401, 'end_users_not_allowed')
      await denied(t, '/api/admin/users', auth(`Bearer ${await mint({ scope: 'admin', aud: 'partner' })}`), 401, 'end_users_not_allowed')
    })
    await stillServes(t)
  })

  t.test('A. 22a: a 17 KB Authorization header is 431, and reaches nobody', async (t) => {
    await denied(t, '/api/orders/1', { authorization: `Bearer ${'A'.repeat(17 * 1024)}` }, 431, 'request_header_fields_too_large')
    await stillServes(t)
  })

  t.test('B. carrying the credential (RFC 6750)', async (t) => {
    await t.test('23: no header, an invalid token, too small a scope: exactly the three answers of RFC 6750 §3', async (t) => {
      await denied(t, '/api/orders/1', {}, 401, 'unauthorized')
      await denied(t, '/api/orders/1', auth(`Bearer ${T.slice(0, -6)}AAAAAA`), 401, 'invalid_token')
      await denied(t, '/api/admin/x', auth(`Bearer ${T}`), 403, 'insufficient_scope')
    })
    await t.test('24: the scheme is case-insensitive, and one or more spaces follow it', async (t) => {
      for (const value of [`bearer ${T}`, `BEARER ${T}`, `Bearer  ${T}`]) {
        await allowed(t, '/api/orders/1', auth(value), { path: '/api/orders/1', route: 'orders-read' })
      }
    })
    await t.test('24a: a tab, no space, a second word or a trailing comma is never accepted', async (t) => {
      await denied(t, '/api/orders/1', auth(`Bearer\t${T}`), 401, 'unauthorized')
      await denied(t, '/api/orders/1', auth(`Bearer${T}`), 401, 'unauthorized')
      await denied(t, '/api/orders/1', auth(`Bearer ${T} x`), 400, 'invalid_request')
      await denied(t, '/api/orders/1', auth(`Bearer ${T},`), 400, 'invalid_request')
    })
    await t.test('25: another scheme is no bearer credentials: 401 with a bare challenge', async (t) => {
      for (const value of ['Basic dXNlcjpwYXNz', `Token ${T}`]) await denied(t, '/api/orders/1', auth(value), 401, 'unauthorized')
    })
    await t.test('25b: the DPoP scheme without its proof is refused with a DPoP challenge (docs/dpop.md)', async (t) => {
      const before = echo.received.length
      const res = await send(gw.proxyUrl, '/api/orders/1', { headers: auth(`DPoP ${T}`) })
      t.equal(res.status, 401, 'status')
      t.equal(res.json?.error, 'invalid_dpop_proof', 'error code')
      t.match(res.headers['www-authenticate'], /^DPoP realm="scopegate", error="invalid_dpop_proof", error_description="[^"\r\n]+", algs="[^"\r\n]+"$/, 'the DPoP challenge')
      t.equal(echo.received.length, before, 'the upstream received nothing')
    })
    await stillServes(t)
  })

  t.test('C. paths that try to walk around /api/admin: judged on the canonical path, or refused', async (t) => {
    const adminT = await mint({ scope: 'orders:read admin' })
    // Each judged as /api/admin…: T (no admin scope) is refused, a token with admin reaches exactly that path.
    const canonical: Array<[id: string, target: string, path: string]> = [
      ['29', '/api/x/../admin', '/api/admin'],
      ['29', '/api/x/%2e%2e/admin', '/api/admin'],
      ['29', '/api/x/.%2e/admin', '/api/admin'],
      ['29', '/api/x/%2E%2E/admin', '/api/admin'],
      ['29', '/public/../api/admin', '/api/admin'],
      ['31', '/api//admin', '/api/admin'],
      ['31', '///api/admin', '/api/admin'],
      ['34', '/api/%61dmin', '/api/admin'],
      ['34', '/api/%61%64%6D%69%6E', '/api/admin'],
      ['36', '/api/admin/', '/api/admin/'],
      ['37', '/api/admin;x=1', '/api/admin'],
      ['37', '/api/;/admin', '/api/admin'],
      ['37', '/api/x/..;/admin', '/api/admin']
    ]
    for (const [id, target, path] of canonical) {
      await t.test(`${id}: ${target}`, async (t) => {
        await denied(t, target, {}, 401, 'unauthorized')
        await denied(t, target, auth(`Bearer ${T}`), 403, 'insufficient_scope')
        await allowed(t, target, auth(`Bearer ${adminT}`), { path, route: 'admin' })
      })
    }
    // No canonical form: 400 for everyone, admin token or not.
    const refused: Array<[id: string, target: string]> = [
      ['32', '/api%2fadmin'], ['32', '/api%2Fadmin'], ['32', '/api/.%2fadmin'], ['32', '/api/%5cadmin'], ['32', '/api/%5Cadmin'], ['32', '/api\\admin'],
      ['33', '/api/x%252f..%252fadmin'], ['33', '/api/x%252e%252e/admin'], ['33', '/api/%255cadmin'],
      ['36', '/api/admin%09'], ['36', '/api/admin%00'],
      ['38', '/api/admin#x'], ['38', '/public#/../admin'],
      ['40', '/api/%zz'], ['40', '/api/%'], ['40', '/api/%c0%ae%c0%ae/admin']
    ]
    for (const [id, target] of refused) {
      await t.test(`${id}: ${target}`, async (t) => {
        await denied(t, target, auth(`Bearer ${adminT}`), 400, 'invalid_request')
      })
    }
    // Neither /api/admin nor any route: refused by default, nothing forwarded.
    const elsewhere: Array<[id: string, target: string]> = [
      ['34', '/api/%EF%BD%81dmin'], ['35', '/api/ADMIN'], ['35', '/API/admin'], ['36', '/api/admin.'], ['36', '/api/admin%20']
    ]
    for (const [id, target] of elsewhere) {
      await t.test(`${id}: ${target}`, async (t) => {
        await denied(t, target, auth(`Bearer ${adminT}`), 404, 'no_route')
      })
    }
    await t.test('38: a query is not a path: /public?/../admin reaches /public with its query as sent', async (t) => {
      await allowed(t, '/public?/../admin', {}, { path: '/public?/../admin', route: 'public' })
    })
    await t.test('41: HEAD is decided as GET', async (t) => {
      await denied(t, '/api/admin/x', auth(`Bearer ${T}`), 403, 'insufficient_scope', 'HEAD')
      await denied(t, '/api/admin/x', {}, 401, 'unauthorized', 'HEAD')
      const before = echo.received.length
      const res = await send(gw.proxyUrl, '/api/orders/1', { method: 'HEAD', headers: auth(`Bearer ${T}`) })
      t.equal(res.status, 200)
      t.equal(echo.received.at(-1)?.method, 'HEAD')
      t.equal(echo.received.length, before + 1)
    })
    await t.test('41a: an unauthenticated OPTIONS never carries identity', async (t) => {
      await denied(t, '/api/admin/x', {}, 401, 'unauthorized', 'OPTIONS')
      await denied(t, '/api/orders/1', {}, 404, 'no_route', 'OPTIONS')
      await allowed(t, '/public/x', { 'x-auth-subject': 'root', 'x-auth-scopes': 'admin' }, { path: '/public/x', route: 'public' }, 'OPTIONS')
      const seen = echo.received.at(-1)
      t.equal(seen?.headers['x-auth-subject'], undefined, 'no subject, not even the forged one')
      t.equal(seen?.headers['x-auth-scopes'], undefined)
    })
    await t.test('41b: PROPFIND, PURGE and TRACE are denied by default', async (t) => {
      // TRACE is a method the proxy routes: the admin route (any method) judges it.
      await denied(t, '/api/admin/x', auth(`Bearer ${T}`), 403, 'insufficient_scope', 'TRACE')
      await denied(t, '/api/orders/1', auth(`Bearer ${T}`), 404, 'no_route', 'TRACE')
      // Methods outside HTTP's core set are routed nowhere, even on a route that names no methods.
      for (const method of ['PROPFIND', 'PURGE']) {
        await denied(t, '/api/admin/x', auth(`Bearer ${await mint({ scope: 'admin' })}`), 404, 'no_route', method)
        await denied(t, '/api/orders/1', auth(`Bearer ${T}`), 404, 'no_route', method)
      }
    })
    await t.test('41c: a lower-case method is not HTTP: 400, nothing forwarded', async (t) => {
      const before = echo.received.length
      const answer = await rawExchange(proxyPort, `get /api/orders/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${T}\r\n\r\n`)
      t.match(answer, /^HTTP\/1\.1 400 /)
      t.match(answer, /"error":"invalid_request"/)
      t.equal(echo.received.length, before, 'the upstream received nothing')
    })
    await stillServes(t)
  })

  t.test('C. 49: request smuggling shapes are 400, and reach nobody', async (t) => {
    // With a token the route would allow: only the framing can stop these.
    const head = `POST /api/orders/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${await mint({ scope: 'orders:write' })}\r\n`
    const shapes: Array<[name: string, request: string]> = [
      ['Content-Length and Transfer-Encoding together', `${head}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
      ['Transfer-Encoding: chunked, identity', `${head}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`],
      ['a space before the colon', `${head}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`],
      ['obs-fold', `${head}Transfer-Encoding: identity\r\n chunked\r\n\r\n0\r\n\r\n`],
      ['a bare LF', 'POST /api/orders/1 HTTP/1.1\nHost: x\nContent-Length: 0\n\n'],
      ['two differing Content-Lengths', `${head}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab`],
      ['Transfer-Encoding: xchunked', `${head}Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`]
    ]
    for (const [name, request] of shapes) {
      await t.test(name, async (t) => {
        const before = echo.received.length
        const answer = await rawExchange(proxyPort, request)
        t.match(answer, /^HTTP\/1\.1 400 /, '400')
        t.equal((answer.match(/HTTP\/1\.1 /g) ?? []).length, 1, 'one answer')
        t.equal(echo.received.length, before, 'the upstream received nothing')
      })
    }
    await stillServes(t)
  })

  t.test('C. 50: a request hidden in the body of a refused POST is never served', async (t) => {
    const hidden = `GET /api/admin/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${await mint({ scope: 'admin' })}\r\n\r\n`
    const request = `POST /api/orders/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${T.slice(0, -6)}AAAAAA\r\nContent-Length: ${Buffer.byteLength(hidden)}\r\nContent-Type: text/plain\r\n\r\n${hidden}`
    const before = echo.received.length
    const answer = await rawExchange(proxyPort, request)
    t.equal((answer.match(/HTTP\/1\.1 \d{3}/g) ?? []).length, 1, 'exactly one answer on the connection')
    t.match(answer, /^HTTP\/1\.1 401 /)
    t.match(answer, /"error":"invalid_token"/)
    t.equal(echo.received.length, before, 'the upstream received nothing')
    await stillServes(t)
  })

  t.test('D. forward auth answers with the proxy\'s decisions, as 2xx, 401 or 403 only', async (t) => {
    const ask = (uri: string, method: string | null, headers: Record<string, string> = {}): Promise<TestResponse> =>
      send(gw.adminUrl, '/decisions', { headers: { ...(method === null ? {} : { 'x-forwarded-method': method }), 'x-forwarded-uri': uri, ...headers } })
    const calls = async (t: Test, uri: string, method: string | null, headers: Record<string, string>, status: number, code?: string): Promise<void> => {
      const before = echo.received.length
      const res = await ask(uri, method, headers)
      t.equal(res.status, status, `${method ?? '(no method)'} ${uri}: ${status}`)
      if (code !== undefined) t.equal(res.json?.error, code)
      if (status === 401) t.match(res.headers['www-authenticate'], /^Bearer realm="scopegate"/, '401 carries the challenge')
      t.equal(echo.received.length, before, 'scopegate forwarded nothing itself')
    }
    await t.test('53: allow, deny and a bad token', async (t) => {
      const res = await ask('/api/orders/1', 'GET', auth(`Bearer ${T}`))
      t.equal(res.status, 200)
      t.equal(res.headers['x-auth-subject'], 'alice')
      t.equal(res.headers['x-auth-scopes'], 'orders:read')
      await calls(t, '/api/admin/x', 'GET', auth(`Bearer ${T}`), 403, 'insufficient_scope')
      await calls(t, '/api/orders/1', 'GET', auth(`Bearer ${T.slice(0, -6)}AAAAAA`), 401, 'invalid_token')
      await calls(t, '/api/orders/1', 'GET', {}, 401, 'unauthorized')
    })
    await t.test('54: section C paths named in X-Forwarded-Uri and X-Original-URL get the proxy\'s decisions', async (t) => {
      for (const uri of ['/api/x/../admin', '/api/%2e/admin', '/api//admin', '/api/admin;x=1', '/api/%61dmin']) {
        await calls(t, uri, 'GET', auth(`Bearer ${T}`), 403, 'insufficient_scope')
      }
      for (const uri of ['/api%2fadmin', '/api/x%252f..%252fadmin', '/api/%zz']) await calls(t, uri, 'GET', auth(`Bearer ${T}`), 403, 'invalid_request')
      const nginxForm = await send(gw.adminUrl, '/decisions', { headers: { 'x-original-method': 'GET', 'x-original-url': 'https://api.example/api/x/%2e%2e/admin', ...auth(`Bearer ${T}`) } })
      t.equal(nginxForm.status, 403)
      t.match(nginxForm.headers['www-authenticate'], /error="insufficient_scope"/)
    })
    await t.test('56: X-Forwarded-Method missing or in lower case is never taken for GET', async (t) => {
      await calls(t, '/api/orders/1', null, auth(`Bearer ${T}`), 403, 'invalid_request')
      await calls(t, '/api/orders/1', 'get', auth(`Bearer ${T}`), 403, 'no_route')
    })
    await t.test('57: a probe user agent or a health-check path still needs a token', async (t) => {
      await calls(t, '/api/orders/1', 'GET', { 'user-agent': 'kube-probe/1.29' }, 401, 'unauthorized')
      await calls(t, '/healthz', 'GET', { 'user-agent': 'kube-probe/1.29' }, 403, 'no_route')
    })
    await t.test('58: keys unavailable is 401 in forward auth (503 in proxy mode), never 2xx', async (t) => {
      const token = await mintToken(k1, { ...claims(), iss: downJwks.issuer })
      await calls(t, '/api/orders/1', 'GET', auth(`Bearer ${token}`), 401, 'temporarily_unavailable')
      const res = await denied(t, '/api/orders/1', auth(`Bearer ${token}`), 503, 'temporarily_unavailable')
      t.ok(Number(res.headers['retry-after']) > 0, 'Retry-After')
    })
    await stillServes(t)
  })

  t.test('the log never carries a token', async (t) => {
    const log = gw.rawLog()
    for (const token of sent) {
      const credential = token.replace(/^\S+\s+/, '')
      if (credential.length > 40) t.notOk(log.includes(credential), 'token absent from the log')
    }
  })
})

t.test('F. 71: an upstream that resets mid-body aborts that response; the next request succeeds', async (t) => {
  const key = await makeKey('RS256', 'k1')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  let hits = 0
  const upstream = net.createServer((socket) => {
    socket.once('data', () => {
      hits++
      if (hits === 1) {
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\npartial')
        setTimeout(() => socket.resetAndDestroy(), 50)
      } else {
        socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
      }
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => upstream.close(() => resolve())))
  const port = (upstream.address() as net.AddressInfo).port
  const gw = await startGateway({
    issuers: [{ id: 'idp', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['RS256'], audiences: ['gw'] }],
    upstreams: { flaky: { url: `http://127.0.0.1:${port}` } },
    routes: [{ id: 'flaky', match: { path: '/f', prefix: true }, upstream: 'flaky' }]
  })
  t.teardown(() => gw.close())
  const token = await mintToken(key, { iss: jwks.issuer, aud: 'gw', sub: 'alice' })

  const first = await send(gw.proxyUrl, '/f/1', { headers: { authorization: `Bearer ${token}` } }).then((res) => res, (err: Error) => err)
  if (first instanceof Error) t.pass(`the client's response was aborted (${first.message})`)
  else t.ok(first.body.length < 100000, `the client did not get a complete body (${first.body.length} bytes)`)
  t.equal(hits, 1, 'the upstream received the request once (no retry of a request under way)')
  const second = await send(gw.proxyUrl, '/f/2', { headers: { authorization: `Bearer ${token}` } })
  t.equal(second.status, 200, 'the next request succeeds')
  t.equal(second.body, 'ok')
  t.equal(hits, 2)
})

t.test('E. 65, 67, 68: a JWKS that is no JWKS or holds only unusable keys is 503; a token naming another issuer is 401; never 200 or 500', async (t) => {
  const key = await makeKey('RS256', 'k1')
  const echo = await startEcho()
  t.teardown(() => echo.close())
  /** Where a redirect points: it must never be followed. */
  const elsewhere = await startEcho()
  t.teardown(() => elsewhere.close())
  const redirecting = http.createServer((_req, res) => { res.writeHead(302, { location: `${elsewhere.url}/jwks.json` }).end() })
  await new Promise<void>((resolve) => redirecting.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { redirecting.closeAllConnections(); redirecting.close(() => resolve()) }))
  const redirectUrl = `http://127.0.0.1:${(redirecting.address() as net.AddressInfo).port}/jwks.json`

  const { privateKey: rsa1024 } = generateKeyPairSync('rsa', { modulusLength: 1024 })
  const unusable = [
    { ...key.publicJwk, use: 'enc' },
    { ...key.publicJwk, alg: 'ES256' },
    { kty: 'oct', k: 'c2VjcmV0', kid: 'k1', alg: 'HS256' },
    { ...createPublicKey(rsa1024).export({ format: 'jwk' }), kid: 'k1', alg: 'RS256' },
    { ...rsa1024.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256' }
  ]
  const modes: Array<[name: string, mode: JwksMode | 'redirect']> = [
    ['an HTML page', { body: '<html><body>maintenance</body></html>', contentType: 'text/html' }],
    ['invalid JSON', { body: '{"keys": [' }],
    ['{"keys":"x"}', { body: '{"keys":"x"}' }],
    ['404', { body: 'not found', status: 404, contentType: 'text/plain' }],
    ['a 302 to another host', 'redirect'],
    ['only unusable keys (use enc, a mismatched alg, kty oct, 1024-bit RSA, private members)', { body: JSON.stringify({ keys: unusable }) }]
  ]
  const servers: JwksServer[] = []
  for (const [, mode] of modes) {
    const server = await startJwksServer([key])
    t.teardown(() => server.close())
    if (mode !== 'redirect') server.setMode(mode)
    servers.push(server)
  }
  const gw = await startGateway({
    issuers: modes.map(([, mode], i) => ({
      id: `i${i}`, issuer: servers[i]?.issuer, jwksUri: mode === 'redirect' ? redirectUrl : servers[i]?.url, algorithms: ['RS256'], audiences: ['gw']
    })),
    upstreams: { echo: { url: echo.url } },
    routes: [{ id: 'api', match: { path: '/api', prefix: true }, upstream: 'echo' }]
  })
  t.teardown(() => gw.close())

  for (const [i, [name]] of modes.entries()) {
    await t.test(name, async (t) => {
      const token = await mintToken(key, { iss: servers[i]?.issuer, aud: 'gw', sub: 'alice' })
      const res = await send(gw.proxyUrl, '/api/x', { headers: { authorization: `Bearer ${token}` } })
      // No usable key was ever fetched: the credentials cannot be checked, and a retry may succeed.
      t.equal(res.status, 503)
      t.equal(res.json?.error, 'temporarily_unavailable')
      t.ok(Number(res.headers['retry-after']) > 0, 'with Retry-After')
      t.equal(echo.received.length, 0, 'the upstream received nothing')
    })
  }
  t.equal(elsewhere.received.length, 0, '65: the redirect was not followed')

  await t.test('68: a token naming an issuer that is not configured fetches nothing', async (t) => {
    const lure = await startJwksServer([key])
    t.teardown(() => lure.close())
    const res = await send(gw.proxyUrl, '/api/x', { headers: { authorization: `Bearer ${await mintToken(key, { iss: lure.issuer, aud: 'gw', sub: 'alice' })}` } })
    t.equal(res.status, 401)
    t.equal(res.json?.error, 'invalid_token')
    t.same([lure.fetches, lure.discoveryFetches], [0, 0], 'neither its JWKS nor its discovery document was asked')
    t.equal(echo.received.length, 0, 'the upstream received nothing')
  })
})
