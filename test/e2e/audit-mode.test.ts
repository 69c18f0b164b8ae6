/**
 * `mode: audit` (docs/responses.md#audit-mode): decide and log, but always forward. A request enforce mode would deny
 * reaches the upstream, the client gets the upstream's answer, and the decision line says
 * `audit_deny` with the reason enforce mode would have given. Whatever identity was proven is still
 * forwarded, with narrowed scopes; nothing unproven is. The same requests on an enforce route are denied.
 */
import t from 'tap'
import { startEcho } from '../helpers/echo-upstream.js'
import { issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'

const TODO = 'https://todo.api'
const OTHER = 'https://other.api'

/**
 * The decision line for a normalized path. Lines are written in the response's onResponse hook, which
 * may run just after the client has read the response, so this yields to the event loop a bounded
 * number of times (no timers) before giving up.
 */
async function decisionFor (gw: TestGateway, path: string): Promise<Record<string, unknown> | undefined> {
  for (let i = 0; i < 200; i++) {
    const line = gw.decisions().find((d) => d.path === path)
    if (line !== undefined) return line
    await new Promise((resolve) => setImmediate(resolve))
  }
  return undefined
}

t.test('audit mode forwards what enforce mode denies, and logs why', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  // The audited upstream answers 207, so the client can tell the upstream's answer from scopegate's.
  const audited = await startEcho()
  audited.setMode({ status: 207 })
  t.teardown(() => audited.close())

  const policy = {
    audience: { allow: [TODO] },
    grants: { roles: { user: ['read:todos'], editor: ['read:todos', 'write:todos'] } },
    scopes: { require: ['write:todos'] }
  }
  const gw = await startGateway({
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [TODO, OTHER] }],
    upstreams: { echo: { url: echo.url }, audited: { url: audited.url } },
    routes: [
      { id: 'audited', match: { path: '/audited', prefix: true }, upstream: 'audited', mode: 'audit', policy },
      { id: 'enforced', match: { path: '/enforced', prefix: true }, upstream: 'echo', policy }
    ]
  })
  t.teardown(() => gw.close())

  const claims = { iss: jwks.issuer, aud: TODO, sub: 'alice', client_id: 'todo-app', scope: 'read:todos write:todos delete:todos' }
  const editor = await mintToken(key, { ...claims, roles: ['editor'] })
  const user = await mintToken(key, { ...claims, roles: ['user'] })
  const otherAudience = await mintToken(key, { ...claims, aud: OTHER, roles: ['editor'] })
  const forged = `${editor.split('.').slice(0, 2).join('.')}.${Buffer.from('forged').toString('base64url')}`

  interface Case {
    name: string
    headers: Record<string, string>
    status: number
    code: string
    reason: string
    /** What the upstream sees on the audited route: the proven identity, or none. */
    subject: string | undefined
    scopes: string | undefined
  }
  const cases: Case[] = [
    { name: 'no token', headers: {}, status: 401, code: 'unauthorized', reason: 'token_missing', subject: undefined, scopes: undefined },
    { name: 'a forged signature', headers: bearer(forged), status: 401, code: 'invalid_token', reason: 'token_signature_invalid', subject: undefined, scopes: undefined },
    { name: 'an audience the route does not accept', headers: bearer(otherAudience), status: 401, code: 'invalid_token', reason: 'token_audience_invalid', subject: 'alice', scopes: 'read:todos write:todos' },
    { name: 'a role that narrows away the required scope', headers: bearer(user), status: 403, code: 'insufficient_scope', reason: 'scope_insufficient', subject: 'alice', scopes: 'read:todos' }
  ]

  for (const c of cases) {
    t.test(`${c.name}: forwarded in audit mode with decision audit_deny, denied in enforce mode`, async (t) => {
      const slug = c.name.replace(/[^a-z]+/g, '-')

      const before = audited.received.length
      const res = await send(gw.proxyUrl, `/audited/${slug}`, { headers: { ...c.headers, 'x-auth-subject': 'mallory', 'x-auth-scopes': 'everything' } })
      t.equal(res.status, 207, 'the client gets the upstream\'s status')
      t.equal(res.json?.url, `/audited/${slug}`, 'and the upstream\'s body')
      t.equal(res.headers['www-authenticate'], undefined, 'no challenge: nothing was denied')
      t.equal(audited.received.length, before + 1, 'the upstream received the request')
      const seen = audited.received.at(-1)
      t.equal(seen?.headers['x-auth-route'], 'audited')
      t.equal(seen?.headers['x-auth-subject'], c.subject, 'only a proven subject is forwarded, never the forged one')
      t.equal(seen?.headers['x-auth-scopes'], c.scopes, 'proven scopes are forwarded narrowed')

      const line = await decisionFor(gw, `/audited/${slug}`)
      t.match(line, { route: 'audited', decision: 'audit_deny', reason: c.reason, status: 207, upstreamStatus: 207 })

      const enforcedBefore = echo.received.length
      const denied = await send(gw.proxyUrl, `/enforced/${slug}`, { headers: c.headers })
      t.equal(denied.status, c.status, 'enforce: denied')
      t.equal(denied.json?.error, c.code)
      t.equal(denied.headers['cache-control'], 'no-store')
      t.match(denied.headers['www-authenticate'], /^Bearer realm="scopegate"/)
      t.equal(echo.received.length, enforcedBefore, 'enforce: the upstream received nothing')
      t.match(await decisionFor(gw, `/enforced/${slug}`), { route: 'enforced', decision: 'deny', reason: c.reason, status: c.status })
    })
  }

  t.test('a request both modes allow is logged as allow, with the narrowed scopes', async (t) => {
    const res = await send(gw.proxyUrl, '/audited/allowed', { headers: bearer(editor) })
    t.equal(res.status, 207)
    const seen = audited.received.at(-1)
    t.equal(seen?.headers['x-auth-subject'], 'alice')
    t.equal(seen?.headers['x-auth-scopes'], 'read:todos write:todos', 'delete:todos narrowed away')
    t.equal(seen?.headers['x-auth-roles'], 'editor')
    t.match(await decisionFor(gw, '/audited/allowed'), { decision: 'allow', reason: 'allowed', scopes: 'read:todos write:todos' })

    const enforced = await send(gw.proxyUrl, '/enforced/allowed', { headers: bearer(editor) })
    t.equal(enforced.status, 200)
    t.equal(echo.received.at(-1)?.headers['x-auth-scopes'], 'read:todos write:todos')
  })

  t.test('audit mode still refuses what has no safe form: a bad path never reaches the upstream', async (t) => {
    const before = audited.received.length
    const res = await send(gw.proxyUrl, '/audited/a%2Fb')
    t.equal(res.status, 400)
    t.equal(res.json?.error, 'invalid_request')
    t.equal(audited.received.length, before)
  })

  t.test('the decision log never carries a token', async (t) => {
    const raw = gw.rawLog()
    for (const token of [editor, user, otherAudience, forged]) t.notOk(raw.includes(token))
  })
})
