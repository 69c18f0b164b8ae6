/**
 * `forward.authorization: reissue`, end to end: a real scopegate in front of an upstream that verifies
 * what it receives with jose's createRemoteJWKSet against scopegate's admin JWKS. Checks every claim and
 * the header, that narrowed-away scopes never travel, that anonymous requests carry no Authorization,
 * the cache (same token and route: the same token; another route: another), and the JWKS endpoint.
 */
import { generateKeyPairSync } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { decodeJwt, decodeProtectedHeader, exportJWK } from 'jose'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { bearer, send, type TestResponse } from '../helpers/http.js'
import { makeKey, mintToken, startJwksServer, type TestKey } from '../helpers/jwks-server.js'
import { publishedJwksUri } from '../../src/reissue/reissuer.js'
import { startVerifyingUpstream, type Seen, type VerifyingUpstream } from './verifying-upstream.js'

const ROLES = 'https://scopegate.test/roles'
const API = 'https://todo.api'
const SCOPEGATE = 'https://scopegate.test'
const REPORTS_AUD = 'https://reports.internal'
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

/** Writes a private JWK key file for scopegate and returns its path. */
async function writeKeyFile (dir: string, name: string, key: TestKey): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, JSON.stringify({ ...(await exportJWK(key.privateKey)), kid: key.kid }))
  return file
}

function routes (): Array<Record<string, unknown>> {
  return [
    {
      id: 'todos',
      match: { path: '/todos', prefix: true },
      upstream: 'api',
      policy: { grants: { roles: { admin: ['*'], editor: ['read:todos', 'write:todos'], user: ['read:todos'] } } },
      forward: { authorization: 'reissue' }
    },
    { id: 'reports', match: { path: '/reports', prefix: true }, upstream: 'api', forward: { authorization: 'reissue', audience: REPORTS_AUD } },
    { id: 'public', match: { path: '/public', prefix: true }, upstream: 'api', auth: 'optional', forward: { authorization: 'reissue' } },
    { id: 'open', match: { path: '/open', prefix: true }, upstream: 'api', auth: 'none', forward: { authorization: 'reissue' } }
  ]
}

interface Setup {
  gw: TestGateway
  upstream: VerifyingUpstream
  idpKey: TestKey
  idpIssuer: string
  /** Moves scopegate's clock (and the upstream verifier's) forward. */
  clock: { offsetMs: number }
}

async function setup (t: Test, reissue: Record<string, unknown>): Promise<Setup> {
  const idpKey = await makeKey('ES256')
  const idp = await startJwksServer([idpKey])
  t.teardown(() => idp.close())
  const upstream = await startVerifyingUpstream()
  t.teardown(() => upstream.close())
  const clock = { offsetMs: 0 }
  const gw = await startGateway({
    issuers: [{ id: 'idp', issuer: idp.issuer, jwksUri: idp.url, algorithms: ['ES256'], audiences: [API], claims: { roles: ROLES } }],
    upstreams: { api: { url: upstream.url } },
    reissue,
    routes: routes()
  }, { now: () => Date.now() + clock.offsetMs })
  t.teardown(() => gw.close())
  upstream.trust({
    jwksUrl: `${gw.adminUrl}/.well-known/jwks.json`,
    issuer: SCOPEGATE,
    audiences: [upstream.url, REPORTS_AUD],
    currentDate: () => new Date(Date.now() + clock.offsetMs)
  })
  return { gw, upstream, idpKey, idpIssuer: idp.issuer, clock }
}

/** Sends through scopegate and returns what the upstream recorded for it. */
async function through (s: Setup, path: string, headers: Record<string, string> = {}): Promise<{ res: TestResponse, seen: Seen }> {
  const before = s.upstream.seen.length
  const res = await send(s.gw.proxyUrl, path, { headers })
  const seen = s.upstream.seen[before]
  if (seen === undefined) throw new Error(`the upstream received nothing for ${path}: ${res.status} ${res.body}`)
  return { res, seen }
}

t.test('with a configured key file', async (t) => {
  const dir = t.testdir({})
  const signing = await makeKey('ES256', 'scopegate-2025')
  const s = await setup(t, { issuer: SCOPEGATE, ttl: '60s', keys: [{ file: await writeKeyFile(dir, 'current.jwk.json', signing) }] })
  const mint = (claims: Record<string, unknown>, expiresIn = 300): Promise<string> =>
    mintToken(s.idpKey, { iss: s.idpIssuer, aud: API, sub: 'alice', client_id: 'todo-web', ...claims }, { expiresIn })

  t.test('the upstream verifies the re-issued token against the admin JWKS, and every claim is right', async (t) => {
    const original = await mint({ scope: 'read:todos write:todos delete:todos', [ROLES]: ['editor'] })
    const sentAt = Math.floor(Date.now() / 1000)
    const { res, seen } = await through(s, '/todos/1', bearer(original))
    t.equal(res.status, 200, seen.error ?? 'verified')
    t.not(seen.authorization, `Bearer ${original}`, 'the client\'s token does not travel')
    t.same(seen.verified?.header, { alg: 'ES256', kid: 'scopegate-2025', typ: 'at+jwt' })
    const payload = seen.verified?.payload ?? {}
    t.equal(payload.iss, SCOPEGATE)
    t.equal(payload.aud, s.upstream.url, 'aud defaults to the upstream\'s URL')
    t.equal(payload.sub, 'alice')
    t.equal(payload.client_id, 'todo-web')
    t.equal(payload.scope, 'read:todos write:todos', 'the narrowed scopes')
    t.same(payload.act, { iss: s.idpIssuer, sub: 'alice' })
    t.ok(typeof payload.iat === 'number' && Math.abs(payload.iat - sentAt) <= 2, 'iat is now')
    t.equal(payload.exp, (payload.iat ?? 0) + 60, 'exp is iat + ttl')
    t.match(payload.jti, /^[0-9a-f-]{36}$/)
    t.same(Object.keys(payload).sort(), ['act', 'aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'scope', 'sub'], 'nothing else')
    t.equal(seen.scopes, 'read:todos write:todos', 'the identity headers still travel alongside')
    t.notOk(s.gw.rawLog().includes(seen.authorization?.slice(7) ?? '-'), 'the re-issued token is never logged')
  })

  t.test('exp is the original token\'s when that comes before now + ttl', async (t) => {
    const original = await mint({ scope: 'read:todos', [ROLES]: ['user'] }, 20)
    const { seen } = await through(s, '/todos', bearer(original))
    t.equal(seen.verified?.payload.exp, decodeJwt(original).exp)
  })

  t.test('the route\'s forward.audience is the aud', async (t) => {
    const { seen } = await through(s, '/reports/q1', bearer(await mint({ scope: 'read:reports' })))
    t.equal(seen.verified?.payload.aud, REPORTS_AUD)
    t.equal(seen.verified?.payload.scope, 'read:reports', 'a route without grants does not narrow')
  })

  const narrowing: Array<[string, string, string[], string | undefined]> = [
    ['an editor', 'read:todos write:todos delete:todos', ['editor'], 'read:todos write:todos'],
    ['a user', 'read:todos write:todos delete:todos', ['user'], 'read:todos'],
    ['an admin', 'read:todos delete:todos', ['admin'], 'read:todos delete:todos'],
    ['a user asking for delete only', 'delete:todos', ['user'], undefined],
    ['a principal with no granted role', 'read:todos write:todos', ['guest'], undefined]
  ]
  for (const [who, asked, roles, kept] of narrowing) {
    t.test(`the re-issued token never carries a narrowed-away scope: ${who}`, async (t) => {
      const { res, seen } = await through(s, '/todos', bearer(await mint({ scope: asked, [ROLES]: roles, sub: `${who}-${asked}` })))
      t.equal(res.status, 200, seen.error ?? 'verified')
      t.equal(seen.verified?.payload.scope, kept)
      const carried = String(seen.verified?.payload.scope ?? '').split(' ').filter((x) => x !== '')
      const allowed = (seen.scopes ?? '').split(' ').filter((x) => x !== '')
      t.ok(carried.every((scope) => allowed.includes(scope)), 'every carried scope is a narrowed one')
    })
  }

  t.test('an anonymous request on an optional route is forwarded with no Authorization', async (t) => {
    const { res, seen } = await through(s, '/public/page')
    t.equal(res.status, 200)
    t.equal(seen.authorization, undefined)
  })

  t.test('auth: none forwards no Authorization, not even the client\'s', async (t) => {
    const { res, seen } = await through(s, '/open', bearer(await mint({ scope: 'read:todos' })))
    t.equal(res.status, 200)
    t.equal(seen.authorization, undefined)
  })

  t.test('an authenticated request on an optional route gets a re-issued token', async (t) => {
    const { seen } = await through(s, '/public', bearer(await mint({ sub: 'carol' })))
    t.equal(seen.verified?.payload.sub, 'carol')
  })

  t.test('the cache: the same token on the same route reuses one re-issued token; another route or token gets another', async (t) => {
    const original = await mint({ sub: 'dave', scope: 'read:todos', [ROLES]: ['user'] })
    const first = (await through(s, '/todos/a', bearer(original))).seen
    const again = (await through(s, '/todos/b', bearer(original))).seen
    t.equal(again.authorization, first.authorization, 'reused')
    const elsewhere = (await through(s, '/reports', bearer(original))).seen
    t.not(elsewhere.authorization, first.authorization, 'another route: another token')
    t.equal(elsewhere.verified?.payload.aud, REPORTS_AUD)
    const other = (await through(s, '/todos/a', bearer(await mint({ sub: 'erin', scope: 'read:todos', [ROLES]: ['user'] })))).seen
    t.not(other.authorization, first.authorization, 'another token: another re-issued token')
    t.equal(other.verified?.payload.sub, 'erin')
  })

  t.test('the cache never serves a token at its exp: near it, a fresh one is signed', async (t) => {
    const original = await mint({ sub: 'frank', scope: 'read:todos', [ROLES]: ['user'] }, 3600)
    const first = (await through(s, '/todos', bearer(original))).seen
    s.clock.offsetMs = 56_000 // past exp − 5 s margin of a 60 s token
    t.teardown(() => { s.clock.offsetMs = 0 })
    const later = (await through(s, '/todos', bearer(original))).seen
    t.not(later.authorization, first.authorization)
    t.ok((later.verified?.payload.iat ?? 0) >= (first.verified?.payload.iat ?? 0) + 56, 'signed at the moved clock')
    t.ok((later.verified?.payload.exp ?? 0) > Date.now() / 1000 + 56, 'and valid past it')
  })

  t.test('the JWKS: public keys only, cacheable, and not on the proxy listener', async (t) => {
    const res = await send(s.gw.adminUrl, '/.well-known/jwks.json')
    t.equal(res.status, 200)
    t.match(res.headers['content-type'], /^application\/jwk-set\+json/)
    t.match(res.headers['cache-control'], /^public, max-age=\d+$/)
    t.equal(res.json.keys.length, 1)
    t.match(res.json.keys[0], { kty: 'EC', crv: 'P-256', kid: 'scopegate-2025', alg: 'ES256', use: 'sig' })
    for (const member of PRIVATE_MEMBERS) t.notOk(member in res.json.keys[0], `no ${member}`)
    const onProxy = await send(s.gw.proxyUrl, '/.well-known/jwks.json')
    t.equal(onProxy.status, 404)
    t.equal(onProxy.json?.error, 'no_route')
  })

  t.test('the discovery document names the issuer and the JWKS, from config and not from the request', async (t) => {
    const res = await send(s.gw.adminUrl, '/.well-known/openid-configuration', { headers: { host: 'scopegate-admin:9090' } })
    t.equal(res.status, 200)
    t.match(res.headers['cache-control'], /^public, max-age=\d+$/, 'cacheable, so it must be the same for everyone')
    t.same(res.json, { issuer: SCOPEGATE, jwks_uri: `${SCOPEGATE}/.well-known/jwks.json` }, 'by default, the issuer\'s well-known path')
    const forged = await send(s.gw.adminUrl, '/.well-known/openid-configuration',
      { headers: { host: 'attacker.example', 'x-forwarded-host': 'attacker.example', 'x-forwarded-proto': 'https' } })
    t.equal(forged.status, 200)
    t.equal(forged.body, res.body, 'byte for byte the same document whatever Host the request names')
    t.notMatch(forged.body, /attacker/)
    const jwks = await send(s.gw.adminUrl, new URL(res.json.jwks_uri).pathname)
    t.equal(jwks.json.keys[0].kid, 'scopegate-2025')
  })
})

t.test('reissue.jwksUri is what discovery publishes', async (t) => {
  const jwksUri = 'http://scopegate-admin.internal:9090/.well-known/jwks.json'
  const s = await setup(t, { issuer: SCOPEGATE, jwksUri })
  const res = await send(s.gw.adminUrl, '/.well-known/openid-configuration', { headers: { host: 'elsewhere.example' } })
  t.same(res.json, { issuer: SCOPEGATE, jwks_uri: jwksUri })
  t.equal(publishedJwksUri({ issuer: 'https://scopegate.test/' }), 'https://scopegate.test/.well-known/jwks.json', 'no double slash after an issuer ending in /')
  t.equal(publishedJwksUri({ issuer: 'https://scopegate.test/tenant' }), 'https://scopegate.test/tenant/.well-known/jwks.json')
})

t.test('no private key material on the JWKS, whatever the key files hold', async (t) => {
  const dir = t.testdir({})
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' })
  const ed = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' })
  await writeFile(join(dir, 'rsa.jwk.json'), JSON.stringify({ ...rsa, alg: 'RS256', kid: 'rsa-old' }))
  await writeFile(join(dir, 'ed.jwk.json'), JSON.stringify({ ...ed, alg: 'EdDSA', kid: 'ed-old' }))
  const s = await setup(t, {
    issuer: SCOPEGATE,
    keys: [{ file: await writeKeyFile(dir, 'ec.jwk.json', await makeKey('ES256', 'ec-now')) }, { file: join(dir, 'rsa.jwk.json') }, { file: join(dir, 'ed.jwk.json') }]
  })
  t.ok('d' in rsa && 'p' in rsa && 'qi' in rsa && 'd' in ed, 'the files do hold private members')
  const res = await send(s.gw.adminUrl, '/.well-known/jwks.json')
  t.same(res.json.keys.map((k: { kid: string }) => k.kid), ['ec-now', 'rsa-old', 'ed-old'])
  for (const key of res.json.keys as Array<Record<string, unknown>>) {
    t.same(PRIVATE_MEMBERS.filter((m) => m in key), [], `${String(key.kid)}: no private member`)
  }
  t.notMatch(res.body, new RegExp(`"${String(rsa.d)}"|"${String(ed.d)}"`), 'no private value anywhere in the body')
})

t.test('without a configured key: a generated one, a clear warning, and it survives a reload', async (t) => {
  const s = await setup(t, { issuer: SCOPEGATE })
  const warning = s.gw.logs.find((l) => l.level === 40 && /generated a signing key/.test(String(l.msg)))
  t.ok(warning, 'a warning is logged')
  t.match(String(warning?.msg), /does not survive|stop verifying when scopegate restarts/)
  t.match(String(warning?.msg), /replica/)
  const original = await mintToken(s.idpKey, { iss: s.idpIssuer, aud: API, sub: 'alice', scope: 'read:todos', [ROLES]: ['user'] })
  const { res, seen } = await through(s, '/todos', bearer(original))
  t.equal(res.status, 200, seen.error ?? 'verified')
  t.equal(decodeProtectedHeader(seen.authorization?.slice(7) ?? '').kid, warning?.kid, 'signed by the generated key')
  t.equal(seen.verified?.header.alg, 'ES256', 'ES256 by default')

  const jwksBefore = (await send(s.gw.adminUrl, '/.well-known/jwks.json')).json
  s.gw.gateway.reload(s.gw.gateway.current().config)
  await s.gw.gateway.reissue.settled()
  t.same((await send(s.gw.adminUrl, '/.well-known/jwks.json')).json, jwksBefore, 'the same key after a reload')
  t.equal(s.gw.logs.filter((l) => /generated a signing key/.test(String(l.msg))).length, 1, 'warned once')
})

t.test('without a reissue section: an empty JWKS and no discovery document', async (t) => {
  const echo = await startVerifyingUpstream()
  t.teardown(() => echo.close())
  const gw = await startGateway({ upstreams: { api: { url: echo.url } }, routes: [{ id: 'r', match: { path: '/r' }, upstream: 'api', auth: 'none' }] })
  t.teardown(() => gw.close())
  t.same((await send(gw.adminUrl, '/.well-known/jwks.json')).json, { keys: [] })
  t.equal((await send(gw.adminUrl, '/.well-known/openid-configuration')).status, 404)
})
