/**
 * Key rotation for re-issued tokens: a token signed with the old key keeps verifying (jose
 * createRemoteJWKSet against the admin JWKS) while that key is still listed, across a reload and across a
 * restart, and stops once it is dropped. A reload naming an unusable key is refused whole.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { createRemoteJWKSet, decodeProtectedHeader, exportJWK, jwtVerify } from 'jose'
import { compileTestConfig, startGateway, type TestGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { makeKey, mintToken, startJwksServer } from '../helpers/jwks-server.js'
import { startVerifyingUpstream } from './verifying-upstream.js'

const API = 'https://todo.api'
const SCOPEGATE = 'https://scopegate.test'

t.test('rotation: the old key still verifies while it is published', async (t) => {
  const dir = t.testdir({})
  const files: Record<string, string> = {}
  for (const kid of ['old', 'new']) {
    const key = await makeKey('ES256', kid)
    files[kid] = join(dir, `${kid}.jwk.json`)
    await writeFile(files[kid], JSON.stringify({ ...(await exportJWK(key.privateKey)), kid }))
  }
  await writeFile(join(dir, 'broken.pem'), '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n')

  const idpKey = await makeKey('ES256')
  const idp = await startJwksServer([idpKey])
  t.teardown(() => idp.close())
  const upstream = await startVerifyingUpstream()
  t.teardown(() => upstream.close())

  const config = (keys: string[], extraRoute = false): Record<string, unknown> => ({
    issuers: [{ id: 'idp', issuer: idp.issuer, jwksUri: idp.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { api: { url: upstream.url } },
    reissue: { issuer: SCOPEGATE, ttl: '5m', keys: keys.map((file) => ({ file })) },
    routes: [
      { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'api', forward: { authorization: 'reissue' } },
      ...(extraRoute ? [{ id: 'extra', match: { path: '/extra' }, upstream: 'api', forward: { authorization: 'reissue' } }] : [])
    ]
  })
  const original = await mintToken(idpKey, { iss: idp.issuer, aud: API, sub: 'alice', scope: 'read:todos' }, { expiresIn: 3600 })

  /** Verifies a re-issued token the way an upstream does, with a fresh JWKS fetch each time. */
  const verifyAt = async (gw: TestGateway, jwt: string): Promise<string> => {
    try {
      await jwtVerify(jwt, createRemoteJWKSet(new URL(`${gw.adminUrl}/.well-known/jwks.json`)), { issuer: SCOPEGATE, audience: upstream.url, typ: 'at+jwt' })
      return 'verified'
    } catch (err) {
      return (err as { code?: string }).code ?? String(err)
    }
  }
  const reissued = async (gw: TestGateway, path = '/todos'): Promise<string> => {
    const res = await send(gw.proxyUrl, path, { headers: bearer(original) })
    t.equal(res.status, 200, `${path}: ${res.body}`)
    const authorization = upstream.seen.at(-1)?.authorization ?? ''
    return authorization.replace(/^Bearer /, '')
  }
  const kids = async (gw: TestGateway): Promise<string[]> =>
    ((await send(gw.adminUrl, '/.well-known/jwks.json')).json.keys as Array<{ kid: string }>).map((k) => k.kid)

  // 1. The old key signs; the new one is published ahead of its use.
  let gw = await startGateway(config([files.old as string, files.new as string]))
  t.teardown(() => gw.close())
  upstream.trust({ jwksUrl: `${gw.adminUrl}/.well-known/jwks.json`, issuer: SCOPEGATE, audiences: [upstream.url] })
  const byOld = await reissued(gw)
  t.equal(decodeProtectedHeader(byOld).kid, 'old')
  t.same(await kids(gw), ['old', 'new'])

  // 2. Reload with the new key first, the old still listed.
  gw.gateway.reload(compileTestConfig(config([files.new as string, files.old as string])))
  await gw.gateway.reissue.settled()
  t.same(await kids(gw), ['new', 'old'])
  const byNew = await reissued(gw)
  t.equal(decodeProtectedHeader(byNew).kid, 'new', 'the new key signs at once: the cached old-key token is not served')
  t.equal(upstream.seen.at(-1)?.error, undefined, 'the upstream verified the new-key token')
  t.equal(await verifyAt(gw, byOld), 'verified', 'a token signed with the old key still verifies after the reload')

  // 3. A reload naming an unusable key file is refused whole: keys and routes stay as they were.
  gw.gateway.reload(compileTestConfig(config([join(dir, 'broken.pem')], true)))
  await gw.gateway.reissue.settled()
  const failure = gw.logs.find((l) => l.level === 50 && /config reload failed/.test(String(l.msg)))
  t.ok(failure, 'the failure is logged')
  t.match(failure?.problems, [{ path: 'reissue.keys[0].file', message: /broken\.pem: is not a usable PEM key/ }])
  t.same(await kids(gw), ['new', 'old'], 'the keys in force did not change')
  t.equal((await send(gw.proxyUrl, '/extra', { headers: bearer(original) })).status, 404, 'nor did the routes')

  // 4. Restart with the new key first and the old still listed: the old token still verifies.
  await gw.close()
  gw = await startGateway(config([files.new as string, files.old as string]))
  t.equal(await verifyAt(gw, byOld), 'verified', 'after a restart, too')
  t.equal(await verifyAt(gw, byNew), 'verified')

  // 5. Once the old key is dropped, its tokens stop verifying; the new key's still do.
  gw.gateway.reload(compileTestConfig(config([files.new as string])))
  await gw.gateway.reissue.settled()
  t.same(await kids(gw), ['new'])
  t.equal(await verifyAt(gw, byOld), 'ERR_JWKS_NO_MATCHING_KEY')
  t.equal(await verifyAt(gw, byNew), 'verified')
})

t.test('start-up fails on an unusable key file, naming it', async (t) => {
  const dir = t.testdir({ 'public.pem': (await import('node:crypto')).generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }) as string })
  const upstream = await startVerifyingUpstream()
  t.teardown(() => upstream.close())
  await t.rejects(startGateway({
    upstreams: { api: { url: upstream.url } },
    reissue: { issuer: SCOPEGATE, keys: [{ file: join(dir, 'public.pem') }] },
    routes: [{ id: 'r', match: { path: '/r' }, upstream: 'api', auth: 'none' }]
  }), { code: 'ERR_CONFIG_INVALID', problems: [{ path: 'reissue.keys[0].file', message: /must be a private key/ }] })
})
