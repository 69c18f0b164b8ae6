/**
 * `scopegate explain` and the gateway agree, request by request: a table of requests (an allow, each kind
 * of denial, audit mode, anonymous access) is explained, decided by `decide()` on an engine of the same
 * config, and sent through a running gateway. Explain must tell the decision decide makes, name the
 * stage that failed, and show the headers the upstream actually receives.
 */
import t from 'tap'
import { decide, type Decision } from '../../src/decision/decide.js'
import { buildEngine, loadKeys } from '../../src/decision/engine.js'
import { explain } from '../../src/decision/explain.js'
import { compileTestConfig, issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { makeKey, mintToken, startJwksServer } from '../helpers/jwks-server.js'

const AUD = 'https://todo.api'
const OTHER_AUD = 'http://todoapi2.api'
const IP = '127.0.0.1'

interface Row {
  name: string
  method: string
  target: string
  /** The bearer token, the raw value after `Bearer `; undefined: no Authorization header. */
  token?: string
  /** null: allowed (without an audit note); otherwise the reason of the denial (or of the audit note). */
  reason: string | null
  audit?: boolean
  /** The explain line that names the failing stage, if a stage after route matching failed. */
  stage?: string
}

t.test('explain tells the decision decide makes, and the gateway answers it', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const otherKey = await makeKey('ES256')
  const otherJwks = await startJwksServer([otherKey])
  t.teardown(() => otherJwks.close())
  const raw = {
    issuers: [
      { id: 'idp', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD, OTHER_AUD] },
      { id: 'other', issuer: otherJwks.issuer, jwksUri: otherJwks.url, algorithms: ['ES256'], audiences: [AUD] }
    ],
    upstreams: { todo: { url: echo.url } },
    defaults: { policy: { audience: { deny: [OTHER_AUD], denyMissing: true }, clients: { deny: ['bad-app'] } } },
    routes: [
      {
        id: 'todos',
        match: { path: '/todos', prefix: true, methods: ['GET'] },
        upstream: 'todo',
        policy: { grants: { roles: { user: ['read:todos'], editor: ['read:todos', 'write:todos'] } }, scopes: { require: ['read:todos'] } }
      },
      { id: 'lan', match: { path: '/lan' }, upstream: 'todo', policy: { network: { allow: ['10.0.0.0/8'] } } },
      { id: 'other-only', match: { path: '/other' }, upstream: 'todo', policy: { issuers: ['other'] } },
      { id: 'shadow', match: { path: '/shadow' }, upstream: 'todo', mode: 'audit', policy: { scopes: { require: ['write:todos'] } } },
      { id: 'open', match: { path: '/open' }, upstream: 'todo', auth: 'none' },
      { id: 'feed', match: { path: '/feed' }, upstream: 'todo', auth: 'optional' }
    ]
  }
  const config = compileTestConfig(raw)
  const gw = await startGateway(raw)
  t.teardown(() => gw.close())
  const engine = buildEngine(config, null)
  await loadKeys(engine)

  const claims = { iss: jwks.issuer, aud: AUD, sub: 'alice', client_id: 'todo-web', scope: 'read:todos write:todos', roles: ['user'] }
  const alice = await mintToken(key, claims)
  const [h, , s] = alice.split('.')
  const forged = `${h ?? ''}.${Buffer.from(JSON.stringify({ ...claims, roles: ['editor'] })).toString('base64url')}.${s ?? ''}`
  const rows: Row[] = [
    { name: 'allow', method: 'GET', target: '/todos/1', token: alice, reason: null },
    { name: 'a path normalization refuses', method: 'GET', target: '/todos/%00', token: alice, reason: 'path_invalid' },
    { name: 'no route', method: 'DELETE', target: '/todos/1', token: alice, reason: 'no_route' },
    { name: 'no token', method: 'GET', target: '/todos/1', reason: 'token_missing', stage: 'token' },
    { name: 'a malformed Authorization', method: 'GET', target: '/todos/1', token: 'a b', reason: 'authorization_malformed', stage: 'token' },
    { name: 'a forged signature', method: 'GET', target: '/todos/1', token: forged, reason: 'token_signature_invalid', stage: 'token' },
    { name: 'an expired token', method: 'GET', target: '/todos/1', token: await mintToken(key, { ...claims, iat: 1_000_000, exp: 1_000_300 }), reason: 'token_expired', stage: 'token' },
    { name: 'the network', method: 'GET', target: '/lan', token: alice, reason: 'network_denied', stage: 'network' },
    { name: 'the route\'s issuers', method: 'GET', target: '/other', token: alice, reason: 'token_issuer_not_allowed', stage: 'issuer' },
    { name: 'a denied audience', method: 'GET', target: '/todos/1', token: await mintToken(key, { ...claims, aud: OTHER_AUD }), reason: 'audience_denied', stage: 'audience' },
    { name: 'a missing audience', method: 'GET', target: '/todos/1', token: await mintToken(key, { ...claims, aud: undefined }), reason: 'audience_missing', stage: 'audience' },
    { name: 'a denied client', method: 'GET', target: '/todos/1', token: await mintToken(key, { ...claims, client_id: 'bad-app' }), reason: 'client_denied', stage: 'client' },
    { name: 'scopes narrowed away', method: 'GET', target: '/todos/1', token: await mintToken(key, { ...claims, roles: ['guest'] }), reason: 'scope_insufficient', stage: 'require' },
    { name: 'audit mode', method: 'GET', target: '/shadow', token: await mintToken(key, { ...claims, scope: 'read:todos' }), reason: 'scope_insufficient', audit: true, stage: 'require' },
    { name: 'auth: none', method: 'GET', target: '/open', reason: null },
    { name: 'auth: optional, anonymous', method: 'GET', target: '/feed', reason: null },
    { name: 'auth: optional, with a token', method: 'GET', target: '/feed', token: alice, reason: null }
  ]

  for (const row of rows) {
    const authorization = row.token === undefined ? [] : [`Bearer ${row.token}`]
    const explained = await explain(config, { method: row.method, path: row.target, ip: IP, token: row.token })
    const decided: Decision = await decide(engine, { method: row.method, target: row.target, authorization, clientIp: IP })
    const before = echo.received.length
    const res = await send(gw.proxyUrl, row.target, { method: row.method, headers: row.token === undefined ? {} : { authorization: authorization[0] ?? '' } })
    const reached = echo.received.slice(before)
    const last = explained.lines.at(-1) ?? ''

    t.equal(explained.allowed, decided.allowed, `${row.name}: explain and decide agree on allow/deny`)
    if (decided.allowed) {
      t.equal(row.audit === true, row.reason !== null, `${row.name}: allowed as the table says (a reason only with audit mode)`)
      t.equal(decided.audit?.reason ?? null, row.reason, `${row.name}: audit note`)
      t.same(explained.decision.allowed && explained.decision.headers, decided.headers, `${row.name}: the same identity headers`)
      t.same(explained.decision.scopes, decided.scopes, `${row.name}: the same narrowed scopes`)
      for (const [name, value] of Object.entries(decided.headers)) t.ok(explained.lines.includes(`header    ${name}: ${value}`), `${row.name}: explain shows ${name}`)
      t.match(last, decided.audit === null ? /^decision +ALLOW$/ : new RegExp(`^decision +ALLOW \\(audit mode; enforce would answer DENY \\d+ \\w+ \\(${row.reason ?? ''}\\)`), `${row.name}: the decision line`)
      t.equal(res.status, 200, `${row.name}: the gateway allows`)
      t.equal(reached.length, 1, `${row.name}: the upstream received it`)
      t.equal(reached[0]?.headers['x-auth-scopes'], decided.headers['x-auth-scopes'], `${row.name}: the upstream received the scopes explain shows`)
    } else {
      t.equal(decided.error.reason, row.reason, `${row.name}: decide's reason`)
      t.equal(explained.decision.allowed ? null : explained.decision.error.reason, decided.error.reason, `${row.name}: explain's reason`)
      t.match(last, new RegExp(`^decision +DENY ${decided.error.status} ${decided.error.code} \\(${decided.error.reason}\\)`), `${row.name}: the decision line`)
      t.equal(res.status, decided.error.status, `${row.name}: the gateway answers the same status`)
      t.equal(res.json?.error, decided.error.code, `${row.name}: and the same code`)
      t.equal(reached.length, 0, `${row.name}: the upstream received nothing`)
    }
    if (row.stage !== undefined) {
      const stage = row.stage
      const failed = explained.lines.filter((line) => line.startsWith(`${stage.padEnd(10)}DENY `))
      t.equal(failed.length, 1, `${row.name}: explain names the failing stage (${row.stage})`)
      t.match(failed[0], `(${row.reason ?? ''})`, `${row.name}: with its reason`)
    }
  }

  // A claims file skips the signature, never the claim types: a mistyped claim is refused as the gateway refuses it.
  const mistyped = { ...claims, sub: 42 }
  const fromClaims = await explain(config, { method: 'GET', path: '/todos/1', ip: IP, claims: mistyped })
  const decidedMistyped = await decide(engine, { method: 'GET', target: '/todos/1', authorization: [`Bearer ${await mintToken(key, mistyped)}`], clientIp: IP })
  t.equal(fromClaims.allowed, false, 'explain --claims refuses a mistyped claim')
  t.equal(decidedMistyped.allowed ? null : decidedMistyped.error.reason, 'token_claim_invalid', 'as the gateway does')
  t.equal(fromClaims.decision.allowed ? null : fromClaims.decision.error.reason, 'token_claim_invalid', 'for the same reason')
})
