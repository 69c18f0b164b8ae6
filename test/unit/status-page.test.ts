/**
 * The status page's pure parts (docs/observability.md#status-page): who gets in, what the denial feed
 * keeps and counts, the policy in words, the cluster merge, and the escaping of every shown value.
 */
import t from 'tap'
import type { SecretValue } from '../../src/config/types.js'
import { describePolicy, describeRouteRules } from '../../src/decision/describe-policy.js'
import { isLoopback, statusAccess } from '../../src/http/status-access.js'
import type { DecisionRecord } from '../../src/http/decision-log.js'
import { DenialFeed, maskPath, WINDOW_MS } from '../../src/observability/denial-feed.js'
import { escapeHtml, formatSeconds, renderStatusPage, STATUS_CSP } from '../../src/observability/status-html.js'
import { mergeSnapshots } from '../../src/observability/status-merge.js'
import { displayError, displayUrl, type StatusSnapshot } from '../../src/observability/status-snapshot.js'
import { compileTestConfig } from '../helpers/gateway.js'

const secret = (value: string): SecretValue => ({ reveal: () => value })
const TOKEN = 'admin-token-0123456789'
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

t.test('access: loopback without forwarding headers, or the admin token; the socket peer only', async (t) => {
  const cases: Array<[string, { peer: string, authorization?: string, forwarded?: boolean }, SecretValue | null, number | 'ok', string?]> = [
    ['IPv4 loopback', { peer: '127.0.0.1' }, null, 'ok'],
    ['anywhere in 127/8', { peer: '127.3.2.1' }, null, 'ok'],
    ['IPv6 loopback', { peer: '::1' }, null, 'ok'],
    ['IPv4-mapped loopback', { peer: '::ffff:127.0.0.1' }, null, 'ok'],
    ['a LAN peer, no token configured', { peer: '10.0.0.5' }, null, 403, 'access_denied'],
    ['a LAN peer presenting a token, none configured', { peer: '10.0.0.5', authorization: `Bearer ${TOKEN}` }, null, 403, 'access_denied'],
    ['loopback relaying a forwarded client', { peer: '127.0.0.1', forwarded: true }, null, 403, 'access_denied'],
    ['a LAN peer, token configured, none sent', { peer: '10.0.0.5' }, secret(TOKEN), 401, 'unauthorized'],
    ['a LAN peer with the Bearer token', { peer: '10.0.0.5', authorization: `Bearer ${TOKEN}` }, secret(TOKEN), 'ok'],
    ['scheme in any case', { peer: '10.0.0.5', authorization: `bearer ${TOKEN}` }, secret(TOKEN), 'ok'],
    ['a LAN peer with the token as Basic password', { peer: '10.0.0.5', authorization: basic('ops', TOKEN) }, secret(TOKEN), 'ok'],
    ['a password with a colon', { peer: '10.0.0.5', authorization: basic('ops', 'a:b-0123456789abcdef') }, secret('a:b-0123456789abcdef'), 'ok'],
    ['the token as Basic user name', { peer: '10.0.0.5', authorization: basic(TOKEN, '') }, secret(TOKEN), 401, 'invalid_token'],
    ['a wrong token', { peer: '10.0.0.5', authorization: 'Bearer admin-token-0123456780' }, secret(TOKEN), 401, 'invalid_token'],
    ['a prefix of the token', { peer: '10.0.0.5', authorization: 'Bearer admin-token' }, secret(TOKEN), 401, 'invalid_token'],
    ['a wrong token from loopback', { peer: '127.0.0.1', authorization: 'Bearer nope' }, secret(TOKEN), 401, 'invalid_token'],
    ['another scheme', { peer: '10.0.0.5', authorization: `Token ${TOKEN}` }, secret(TOKEN), 401, 'invalid_token'],
    ['no scheme', { peer: '10.0.0.5', authorization: TOKEN }, secret(TOKEN), 401, 'invalid_token'],
    ['an empty peer (socket gone)', { peer: '' }, null, 403, 'access_denied'],
    ['not loopback: 128.0.0.1', { peer: '128.0.0.1' }, null, 403, 'access_denied'],
    ['not loopback: ::2', { peer: '::2' }, null, 403, 'access_denied']
  ]
  for (const [name, request, token, expected, error] of cases) {
    const access = statusAccess({ peer: request.peer, authorization: request.authorization, forwarded: request.forwarded ?? false }, token)
    if (expected === 'ok') t.same(access, { allowed: true }, name)
    else t.match(access, { allowed: false, status: expected, error }, name)
  }
  t.notOk(isLoopback('127.0.0.1.example.com'))
})

function record (fields: Partial<DecisionRecord>): DecisionRecord {
  return {
    route: 'todos',
    method: 'GET',
    path: '/todos',
    decision: 'deny',
    reason: 'token_expired',
    upstream: 'todo',
    status: 401,
    upstreamStatus: null,
    sub: null,
    clientId: null,
    scopes: '',
    latencyMs: 1,
    ...fields
  }
}

t.test('the denial feed: keeps the newest N, ignores allows, counts the last five minutes on an injected clock', async (t) => {
  let now = 1_700_000_000_000
  const feed = new DenialFeed({ size: 3, now: () => now })
  const seen: string[] = []
  const stop = feed.subscribe((entry) => seen.push(entry.path ?? ''))
  feed.onDecision(record({ decision: 'allow', reason: 'allowed', status: 200 }))
  for (let i = 0; i < 5; i++) feed.onDecision(record({ path: `/todos/${i}` }))
  t.same(feed.latest().map((e) => e.path), ['/todos/4', '/todos/3', '/todos/2'], 'the newest three, newest first')
  t.same(seen, ['/todos/0', '/todos/1', '/todos/2', '/todos/3', '/todos/4'], 'every denial published, no allow')
  stop()
  feed.onDecision(record({ reason: 'client_denied', decision: 'audit_deny', status: 200 }))
  t.equal(seen.length, 5, 'an unsubscribed feed hears nothing more')
  t.same(feed.counts(), [{ reason: 'token_expired', total: 5, recent: 5 }, { reason: 'client_denied', total: 1, recent: 1 }])

  now += WINDOW_MS - 10_000
  feed.onDecision(record({ reason: 'client_denied' }))
  t.same(feed.counts(), [{ reason: 'token_expired', total: 5, recent: 5 }, { reason: 'client_denied', total: 2, recent: 2 }], 'still inside the window')
  now += 20_000
  t.same(feed.counts(), [{ reason: 'client_denied', total: 2, recent: 1 }, { reason: 'token_expired', total: 5, recent: 0 }], 'the first ones left the window')
  now += 10 * WINDOW_MS
  t.same(feed.counts().map((c) => c.recent), [0, 0], 'a long quiet spell: nothing recent')
  const newest = feed.latest()[0]?.reason
  feed.resize(1)
  t.same(feed.latest().map((e) => e.reason), [newest], 'a smaller size keeps the newest')
  feed.resize(3)
  feed.onDecision(record({ path: '/a' }))
  feed.onDecision(record({ path: '/b' }))
  feed.onDecision(record({ path: '/c' }))
  t.same(feed.latest().map((e) => e.path), ['/c', '/b', '/a'], 'a larger size fills, then wraps')
})

t.test('the denial feed keeps no token: paths masked, strings bounded', async (t) => {
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ'
  t.equal(maskPath(`/cb/${jwt}/x`), '/cb/[redacted]/x')
  t.equal(maskPath('/t/' + 'a'.repeat(48)), '/t/[redacted]', 'a long opaque run')
  t.equal(maskPath('/orders/5b8a2f4e-3c1d-4e5f-9a0b-1c2d3e4f5a6b'), '/orders/5b8a2f4e-3c1d-4e5f-9a0b-1c2d3e4f5a6b', 'a UUID stays')
  t.equal(maskPath('/v1.2.3/file.tar.gz'), '/v1.2.3/file.tar.gz', 'short dotted names stay')
  t.equal(maskPath(null), null)
  const feed = new DenialFeed({ size: 2 })
  feed.onDecision(record({ path: '/' + 'x/'.repeat(300), clientId: 'c'.repeat(500), sub: 's' }))
  const [entry] = feed.latest()
  t.equal(entry?.path?.length, 201, 'the path cut at 200 characters and an ellipsis')
  t.equal(entry?.clientId?.length, 201)
})

t.test('the policy in words, in the order the pipeline checks it', async (t) => {
  const config = compileTestConfig({
    issuers: [{ id: 'a', issuer: 'https://a.test/', jwksUri: 'https://a.test/jwks', algorithms: ['ES256'], audiences: ['api'] }],
    upstreams: { u: { url: 'http://127.0.0.1:1' } },
    routes: [
      {
        id: 'full',
        match: { path: '/full' },
        upstream: 'u',
        auth: 'optional',
        mode: 'audit',
        requireDpop: true,
        rateLimit: { limit: 5, window: '10s', key: ['client', 'address'] },
        policy: {
          network: { allow: ['10.0.0.0/8'], deny: ['10.6.6.0/24'] },
          issuers: ['a'],
          audience: { allow: ['api'], deny: ['old'], denyMissing: true },
          clients: { allow: ['web', 'cli'], deny: ['X'] },
          roles: { require: ['ops', 'dev'], match: 'any' },
          grants: { roles: { admin: ['*'] }, clients: { cli: ['read'] } },
          scopes: { require: ['read', 'write'], match: 'all' },
          conditions: [{ claim: 'tenant', equals: 'acme' }]
        }
      },
      { id: 'open', match: { path: '/open' }, upstream: 'u', auth: 'none' }
    ]
  })
  const [full, open] = config.routes
  if (full === undefined || open === undefined) throw new Error('routes missing')
  t.same(describeRouteRules(full), [
    'a token is optional; one that is sent must pass',
    'requires a DPoP-bound token and proof',
    'client address must be in 10.0.0.0/8',
    'denies client addresses in 10.6.6.0/24',
    'issuer must be one of a',
    'audience must be one of api',
    'denies audience old',
    'denies tokens without an audience',
    'client must be one of web, cli',
    'denies client X',
    'requires role one of ops, dev',
    'scopes narrowed by role: role admin grants *; any other role grants nothing',
    'scopes narrowed by client: client cli grants read; any other client grants nothing',
    'requires read, write',
    `condition: ${full.policy.conditions.token[0]?.label ?? ''}`,
    'rate limit 5 per 10s per client + address (store memory)',
    'audit mode: denials are logged, the request is forwarded anyway'
  ])
  t.same(describeRouteRules(open), ['no token checked (auth: none)'])
  t.same(describePolicy({ ...full.policy, scopes: { require: ['a', 'b'], match: 'any' } }).filter((l) => l.startsWith('requires ') && !l.includes('role')), ['requires one of a, b'])
})

function snapshot (worker: number | null, fields: Partial<StatusSnapshot> = {}): StatusSnapshot {
  return {
    takenAt: 1_700_000_000_000,
    config: 'scopegate.yaml',
    processes: [{ worker, pid: 100 + (worker ?? 0), uptimeSeconds: 60 }],
    routes: [{ id: 'r', methods: [], host: 'any host', path: '/r', prefix: false, auth: 'required', mode: 'enforce', upstream: { id: 'u', url: 'http://u/' }, rules: [] }],
    issuers: [],
    caches: [{ name: 'verified tokens', entries: 2, hits: 3, misses: 1 }],
    redis: null,
    denials: { recent: [], reasons: [] },
    ...fields
  }
}

t.test('the cluster merge: worst issuer state, caches summed, denials by time and counted once', async (t) => {
  const issuer = { id: 'a', issuer: 'https://a/', keysFrom: { kind: 'jwksUri' as const, url: 'https://a/jwks' }, jwksUri: 'https://a/jwks', failingForSeconds: null, lastError: null, introspection: null }
  const denial = (at: number, worker: number): StatusSnapshot['denials']['recent'][number] =>
    ({ at, route: 'r', method: 'GET', path: `/r/${at}`, reason: 'token_expired', status: 401, decision: 'deny', clientId: null, subject: null, worker })
  const one = snapshot(1, {
    issuers: [{ ...issuer, state: 'ready', kids: ['k1'], ageSeconds: 10 }],
    denials: { recent: [denial(3, 1), denial(1, 1)], reasons: [{ reason: 'token_expired', total: 2, recent: 2 }] },
    redis: 'connected'
  })
  const two = snapshot(2, {
    issuers: [{ ...issuer, state: 'stale', kids: ['k1', 'k2'], ageSeconds: 30, failingForSeconds: 20, lastError: 'timeout' }],
    denials: { recent: [denial(2, 2)], reasons: [{ reason: 'token_expired', total: 1, recent: 0 }, { reason: 'no_route', total: 4, recent: 4 }] },
    redis: 'disconnected'
  })
  const merged = mergeSnapshots([two, one], 2)
  t.same(merged?.processes.map((p) => p.worker), [1, 2])
  t.match(merged?.issuers, [{ id: 'a', state: 'stale', kids: ['k1', 'k2'], ageSeconds: 30, failingForSeconds: 20, lastError: 'timeout' }])
  t.same(merged?.caches, [{ name: 'verified tokens', entries: 4, hits: 6, misses: 2 }])
  t.equal(merged?.redis, 'disconnected')
  t.same(merged?.denials.recent.map((d) => d.at), [3, 2], 'newest first, cut to the limit')
  t.same(merged?.denials.reasons, [{ reason: 'no_route', total: 4, recent: 4 }, { reason: 'token_expired', total: 3, recent: 2 }])
  t.equal(mergeSnapshots([], 5), null)
})

t.test('URLs and errors lose user-info and query', async (t) => {
  t.equal(displayUrl('https://user:pw@idp.test/jwks?key=k#f'), 'https://idp.test/jwks?…')
  t.equal(displayUrl('https://idp.test/jwks'), 'https://idp.test/jwks')
  t.equal(displayUrl('not a url'), 'not a url')
  t.equal(displayError('network: fetch https://u:secret@idp.test/k?api_key=s failed'), 'network: fetch https://idp.test/k?… failed')
  t.equal(displayError('x'.repeat(400))?.length, 301)
  t.equal(displayError(null), null)
})

t.test('every shown value is escaped; the CSP names the one script and style by hash', async (t) => {
  t.equal(escapeHtml('<a href="x" title=\'y\'>&</a>'), '&#60;a href=&#34;x&#34; title=&#39;y&#39;&#62;&#38;&#60;/a&#62;')
  t.equal(formatSeconds(42), '42 s')
  t.equal(formatSeconds(303), '5 m 3 s')
  t.equal(formatSeconds(7440), '2 h 4 m')
  t.equal(formatSeconds(3 * 86400 + 7200), '3 d 2 h')
  const evil = '<img src=x onerror=alert(1)>'
  const html = renderStatusPage(snapshot(null, {
    config: evil,
    routes: [{ id: evil, methods: [evil], host: evil, path: evil, prefix: true, auth: evil, mode: evil, upstream: { id: evil, url: evil }, rules: [evil] }],
    issuers: [{ id: evil, issuer: evil, keysFrom: { kind: 'discovery', url: evil }, jwksUri: evil, state: 'unavailable', kids: [evil], ageSeconds: null, failingForSeconds: 5, lastError: evil, introspection: { state: 'failing', lastFailure: evil, failingForSeconds: 5 } }],
    caches: [{ name: evil, entries: 0, hits: 0, misses: 0 }],
    denials: {
      recent: [{ at: 0, route: evil, method: evil, path: evil, reason: evil, status: 401, decision: 'deny', clientId: evil, subject: evil, worker: null }],
      reasons: [{ reason: evil, total: 1, recent: 1 }]
    }
  }), 50)
  t.notOk(html.includes('<img'), 'no value becomes markup')
  // 1 config, 9 route fields, 7 issuer fields, 1 cache, 6 denial fields, the reason 3 times (summary, attribute, cell).
  t.equal(html.split('&#60;img src=x onerror=alert(1)&#62;').length - 1, 27, 'each of the 27 places shows it as text')
  t.match(STATUS_CSP, /^default-src 'none'; script-src 'sha256-[^']+'; style-src 'sha256-[^']+'; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'$/)
})
