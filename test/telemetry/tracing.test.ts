/**
 * OpenTelemetry tracing end to end (docs/observability.md#tracing): a real gateway exports to a real
 * OTLP/HTTP receiver in this process, which decodes the protobuf it gets. Asserted: the span tree (server →
 * decision → verification → key fetch; server → upstream call), whose `traceparent` is continued (trusted
 * peers only by default) and what the upstream receives, the attributes, forward-auth spans, that no token
 * or Authorization value is in any span, the decision line's ids, and that with tracing off nothing is
 * exported and no `traceparent` is added.
 */
import http from 'node:http'
import t, { type Test } from 'tap'
import { listenLocal } from '../helpers/echo-upstream.js'
import { issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { makeKey, mintToken, type JwksServer, type TestKey } from '../helpers/jwks-server.js'
import { exported, inTrace, named, serverSpan } from './exported-spans.js'
import { SPAN_KIND, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './otlp-receiver.js'

const API = 'https://todo.api'
const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CLIENT_SPAN = '00f067aa0ba902b7'
const TRACEPARENT = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`
const TRACEPARENT_SHAPE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/

/** The spans of trace `traceId`, once its server span (the last to end) is exported and `more` holds of them. */
async function traceSpans (gw: TestGateway, receiver: OtlpReceiver, traceId: string,
  more: (trace: ReceivedSpan[]) => boolean = () => true): Promise<ReceivedSpan[]> {
  const ready = (spans: ReceivedSpan[]): boolean => {
    const trace = inTrace(spans, traceId)
    return serverSpan(trace) !== undefined && more(trace)
  }
  return inTrace(await exported(gw, receiver, ready), traceId)
}

/** Every string in every attribute and event of every span, for what must never be there. */
function everyValue (spans: ReceivedSpan[]): string {
  return JSON.stringify(spans.map((s) => [s.name, s.attributes, s.events, s.resource]))
}

/** An OTLP receiver, closed when `t` ends. */
async function receiverFor (t: Test): Promise<OtlpReceiver> {
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  return receiver
}

interface Setup { key: TestKey, jwks: JwksServer, receiver: OtlpReceiver, gw: TestGateway, echo: Awaited<ReturnType<typeof issuerAndEcho>>['echo'] }

async function setup (t: Test, trustProxy: string[] | boolean, telemetry: Record<string, unknown> = {}, cooldown = '30s'): Promise<Setup> {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const receiver = await receiverFor(t)
  const gw = await startGateway({
    server: { trustProxy },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API], jwks: { cooldown } }],
    upstreams: { todo: { url: echo.url } },
    routes: [
      { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } } }
    ],
    telemetry: { tracing: { enabled: true, endpoint: receiver.url }, ...telemetry }
  }, { env: {} })
  t.teardown(() => gw.close())
  return { key, jwks, receiver, gw, echo }
}

/** One issuer, one route to the echo upstream, nothing else: what a test adds is what it is about. */
function plainConfig (jwks: JwksServer, echo: Setup['echo']): Record<string, unknown> {
  return {
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' }]
  }
}

const claims = (jwks: JwksServer): Record<string, unknown> => ({ iss: jwks.issuer, aud: API, sub: 'alice', client_id: 'todo-web', scope: 'read:todos' })

t.test('a trusted client\'s trace is continued: server, decision, verification and upstream spans, and the upstream sees scopegate\'s span', async (t) => {
  const { key, jwks, receiver, gw, echo } = await setup(t, ['127.0.0.1/32'])
  const token = await mintToken(key, claims(jwks))
  const res = await send(gw.proxyUrl, '/todos/1?access=secret-query', { headers: { ...bearer(token), traceparent: TRACEPARENT, tracestate: 'vendor=abc' } })
  t.equal(res.status, 200)
  t.equal(echo.received.length, 1, 'the upstream got the request')
  const upstreamParent = TRACEPARENT_SHAPE.exec(String(echo.received[0]?.headers.traceparent))
  t.ok(upstreamParent, 'the upstream got a traceparent')
  t.equal(upstreamParent?.[1], CLIENT_TRACE, 'in the client\'s trace')
  t.not(upstreamParent?.[2], CLIENT_SPAN, 'naming a span of scopegate\'s, not the client\'s')
  t.equal(echo.received[0]?.headers.tracestate, 'vendor=abc', 'the trusted client\'s tracestate goes along')

  const spans = inTrace(await exported(gw, receiver, (s) => inTrace(s, CLIENT_TRACE).length >= 4), CLIENT_TRACE)
  const server = serverSpan(spans)
  t.equal(server?.parentSpanId, CLIENT_SPAN, 'the server span is the child of the client\'s span')
  t.equal(server?.name, 'GET /todos')
  t.match(server?.attributes, { 'http.request.method': 'GET', 'url.path': '/todos/1', 'http.route': '/todos', 'http.response.status_code': 200, 'scopegate.route': 'todos' })
  const [decision] = named(spans, 'scopegate.decision')
  t.equal(decision?.parentSpanId, server?.spanId, 'the decision is inside the server span')
  t.match(decision?.attributes, {
    'scopegate.route': 'todos',
    'scopegate.decision': 'allow',
    'scopegate.reason': 'allowed',
    'scopegate.token.cache': 'miss',
    'scopegate.token.path': 'jwt',
    'scopegate.issuer': 'main',
    'scopegate.client_id': 'todo-web'
  })
  t.notOk('scopegate.status' in (decision?.attributes ?? {}), 'an allow has no denial status')
  const [verification] = named(spans, 'scopegate.verify_token')
  t.equal(verification?.parentSpanId, decision?.spanId, 'the verification is inside the decision')
  t.equal(verification?.attributes['scopegate.issuer'], 'main')
  const upstream = spans.find((s) => s.kind === SPAN_KIND.client)
  t.equal(upstream?.parentSpanId, server?.spanId, 'the upstream call is a child of the server span')
  t.equal(upstream?.spanId, upstreamParent?.[2], 'the upstream\'s traceparent names the upstream call\'s span')
  t.match(upstream?.attributes, {
    'http.request.method': 'GET',
    'server.address': '127.0.0.1',
    'url.path': '/todos/1',
    'url.full': `${echo.url}/todos/1`,
    'http.response.status_code': 200,
    'scopegate.upstream': 'todo'
  })
  t.equal(server?.resource['service.name'], 'scopegate', 'the default service name')
  t.type(server?.resource['service.instance.id'], 'string')
  const all = everyValue(spans)
  t.notOk(all.includes('secret-query'), 'no query string in any span')

  // The same token again: a cache hit, and no verification.
  const again = await send(gw.proxyUrl, '/todos/2', { headers: { ...bearer(token), traceparent: `00-${'ab'.repeat(16)}-${CLIENT_SPAN}-01` } })
  t.equal(again.status, 200)
  const second = inTrace(await exported(gw, receiver, (s) => inTrace(s, 'ab'.repeat(16)).length >= 3), 'ab'.repeat(16))
  t.equal(named(second, 'scopegate.decision')[0]?.attributes['scopegate.token.cache'], 'hit')
  t.equal(named(second, 'scopegate.verify_token').length, 0, 'a cached token is not verified again')
})

t.test('the key fetch a verification causes is a span inside it; the start-up fetch has a trace of its own', async (t) => {
  // No cooldown: the unknown kid below may refetch at once.
  const { key, jwks, receiver, gw, echo } = await setup(t, ['127.0.0.1/32'], {}, '0s')
  const startup = await exported(gw, receiver, (s) => named(s, 'scopegate.jwks').length >= 1)
  const [first] = named(startup, 'scopegate.jwks')
  t.equal(first?.parentSpanId, '', 'the start-up fetch is a root span')
  t.match(first?.attributes, { 'http.request.method': 'GET', 'url.full': jwks.url, 'http.response.status_code': 200, 'scopegate.issuer': 'main' })
  t.equal(first?.kind, SPAN_KIND.client)

  // A key the store has not seen: the verification fetches the JWKS again.
  const rotated = await makeKey('ES256')
  jwks.setKeys([key, rotated])
  const token = await mintToken(rotated, claims(jwks))
  const res = await send(gw.proxyUrl, '/todos', { headers: { ...bearer(token), traceparent: TRACEPARENT } })
  t.equal(res.status, 200)
  t.equal(echo.received.length, 1)
  const spans = await traceSpans(gw, receiver, CLIENT_TRACE, (trace) => named(trace, 'scopegate.jwks').length >= 1)
  const [verification] = named(spans, 'scopegate.verify_token')
  const [fetch] = named(spans, 'scopegate.jwks')
  t.ok(verification !== undefined && fetch !== undefined, 'both spans exported')
  t.equal(fetch?.parentSpanId, verification?.spanId, 'the JWKS fetch is a child of the verification that needed it')
})

t.test('an untrusted client\'s traceparent starts no trace of its: a new trace, and its traceparent and tracestate are replaced', async (t) => {
  const { key, jwks, receiver, gw, echo } = await setup(t, ['10.0.0.0/8'])
  const token = await mintToken(key, claims(jwks))
  const res = await send(gw.proxyUrl, '/todos', { headers: { ...bearer(token), traceparent: TRACEPARENT, tracestate: 'vendor=abc' } })
  t.equal(res.status, 200)
  const sent = TRACEPARENT_SHAPE.exec(String(echo.received[0]?.headers.traceparent))
  t.ok(sent, 'the upstream got a traceparent')
  t.not(sent?.[1], CLIENT_TRACE, 'of a new trace')
  t.equal(echo.received[0]?.headers.tracestate, undefined, 'the untrusted tracestate is dropped')
  const traceId = sent?.[1] ?? ''
  const spans = await traceSpans(gw, receiver, traceId)
  t.equal(serverSpan(spans)?.parentSpanId, '', 'the server span is a root')
  t.equal(inTrace(receiver.spans, CLIENT_TRACE).length, 0, 'nothing in the client\'s trace')
  const line = gw.decisions().at(-1)
  t.equal(line?.trace_id, traceId, 'the decision line names the trace')
  t.equal(line?.span_id, serverSpan(spans)?.spanId, 'and the server span')
})

t.test('malformed traceparents are ignored, never an error', async (t) => {
  const { key, jwks, receiver, gw, echo } = await setup(t, true, { propagation: { trust: 'always' } })
  const token = await mintToken(key, claims(jwks))
  const bad = [
    'garbage', `00-${CLIENT_TRACE}-${CLIENT_SPAN}`, `00-${'0'.repeat(32)}-${CLIENT_SPAN}-01`, `00-${CLIENT_TRACE}-${'0'.repeat(16)}-01`,
    `ff-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, `00-${CLIENT_TRACE.toUpperCase()}-${CLIENT_SPAN}-01`, `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01-extra`, 'x'.repeat(4000)
  ]
  for (const value of bad) {
    const res = await send(gw.proxyUrl, '/todos', { headers: { ...bearer(token), traceparent: value } })
    t.equal(res.status, 200, `${value.slice(0, 60)}: answered`)
    const sent = TRACEPARENT_SHAPE.exec(String(echo.received.at(-1)?.headers.traceparent))
    t.ok(sent, `${value.slice(0, 60)}: replaced by a valid one`)
    t.not(sent?.[1], CLIENT_TRACE, `${value.slice(0, 60)}: in a new trace`)
  }
  // Two traceparent headers are no traceparent at all (W3C Trace Context §3.2.1).
  const twice = await send(gw.proxyUrl, '/todos', {
    headers: ['host', new URL(gw.proxyUrl).host, 'authorization', `Bearer ${token}`, 'traceparent', TRACEPARENT, 'traceparent', TRACEPARENT]
  })
  t.equal(twice.status, 200)
  t.not(TRACEPARENT_SHAPE.exec(String(echo.received.at(-1)?.headers.traceparent))?.[1], CLIENT_TRACE, 'two traceparents: a new trace')
  t.equal(echo.received.length, bad.length + 1, 'every request reached the upstream')
  await exported(gw, receiver, (s) => s.filter((x) => x.kind === SPAN_KIND.server).length >= bad.length + 1)
  t.equal(inTrace(receiver.spans, CLIENT_TRACE).length, 0, 'no span in the malformed values\' trace')
})

t.test('propagation.trust never: even a trusted peer\'s trace is not continued', async (t) => {
  const { key, jwks, receiver, gw, echo } = await setup(t, ['127.0.0.1/32'], { propagation: { trust: 'never' } })
  const res = await send(gw.proxyUrl, '/todos', { headers: { ...bearer(await mintToken(key, claims(jwks))), traceparent: TRACEPARENT } })
  t.equal(res.status, 200)
  const traceId = TRACEPARENT_SHAPE.exec(String(echo.received[0]?.headers.traceparent))?.[1] ?? ''
  t.not(traceId, CLIENT_TRACE)
  t.equal(serverSpan(await traceSpans(gw, receiver, traceId))?.parentSpanId, '', 'a root span')
})

t.test('denials and upstream failures: the decision span says why; 5xx marks the spans as errors', async (t) => {
  const { key, jwks, receiver, gw, echo } = await setup(t, ['127.0.0.1/32'])
  const missing = await send(gw.proxyUrl, '/todos', { headers: { traceparent: `00-${'01'.repeat(16)}-${CLIENT_SPAN}-01` } })
  t.equal(missing.status, 401)
  t.equal(echo.received.length, 0, 'the upstream saw nothing')
  const denied = await traceSpans(gw, receiver, '01'.repeat(16))
  t.match(named(denied, 'scopegate.decision')[0]?.attributes, { 'scopegate.decision': 'deny', 'scopegate.reason': 'token_missing', 'scopegate.status': 401 })
  t.equal(serverSpan(denied)?.attributes['http.response.status_code'], 401)
  t.equal(serverSpan(denied)?.statusCode, 0, 'a 4xx is no error of the server span')
  t.equal(denied.filter((s) => s.kind === SPAN_KIND.client).length, 0, 'no upstream span')

  echo.setMode({ status: 503 })
  const token = await mintToken(key, claims(jwks))
  const failing = await send(gw.proxyUrl, '/todos', { headers: { ...bearer(token), traceparent: `00-${'02'.repeat(16)}-${CLIENT_SPAN}-01` } })
  t.equal(failing.status, 503)
  t.equal(echo.received.length, 1, 'the upstream got it and answered 503')
  const spans = await traceSpans(gw, receiver, '02'.repeat(16))
  const upstream = spans.find((s) => s.kind === SPAN_KIND.client)
  t.equal(upstream?.attributes['http.response.status_code'], 503)
  t.equal(upstream?.statusCode, 2, 'the upstream span is an error')
  t.equal(serverSpan(spans)?.statusCode, 2, 'so is the server span')

  echo.setMode('reset')
  const reset = await send(gw.proxyUrl, '/todos', { headers: { ...bearer(token), traceparent: `00-${'03'.repeat(16)}-${CLIENT_SPAN}-01` } })
  t.equal(reset.status, 502)
  const broken = await traceSpans(gw, receiver, '03'.repeat(16))
  const call = broken.find((s) => s.kind === SPAN_KIND.client)
  t.equal(call?.statusCode, 2, 'an unreachable upstream: an error span')
  t.equal(call?.attributes['error.type'], 'upstream_reset')
  t.equal(serverSpan(broken)?.attributes['http.response.status_code'], 502)
})

t.test('no token, part of a token or Authorization value is in any span', async (t) => {
  const { key, jwks, receiver, gw } = await setup(t, ['127.0.0.1/32'])
  const good = await mintToken(key, claims(jwks))
  const expired = await mintToken(key, claims(jwks), { expiresIn: -3600 })
  const forged = `${good.slice(0, good.lastIndexOf('.'))}.${'A'.repeat(86)}`
  const tokens = [good, expired, forged, 'opaque-token-value-1234567890']
  for (const token of tokens) await send(gw.proxyUrl, `/todos?access_token=${token}`, { headers: { ...bearer(token), traceparent: TRACEPARENT } })
  await send(gw.proxyUrl, '/todos', { headers: { authorization: 'Basic dXNlcjpwYXNzd29yZA==', traceparent: TRACEPARENT } })
  const spans = await exported(gw, receiver, (s) => s.filter((x) => x.kind === SPAN_KIND.server).length >= tokens.length + 1)
  t.ok(spans.length >= (tokens.length + 1) * 2, 'spans were exported')
  const all = everyValue(spans)
  for (const token of tokens) {
    for (const part of [token, ...token.split('.').filter((p) => p.length >= 8)]) t.notOk(all.includes(part), `no ${part.slice(0, 12)}… in any span`)
  }
  t.notOk(/bearer/i.test(all), 'no "Bearer"')
  t.notOk(all.includes('dXNlcjpwYXNzd29yZA'), 'no Basic credentials')
  t.notOk(all.includes('alice'), 'no subject')
})

t.test('forward auth: the decision in a span, continued from a trusted ingress\'s traceparent', async (t) => {
  const { key, jwks, receiver, gw, echo } = await setup(t, ['127.0.0.1/32'])
  const token = await mintToken(key, claims(jwks))
  const res = await send(gw.adminUrl, '/decisions/todos/1', { headers: { ...bearer(token), traceparent: TRACEPARENT } })
  t.equal(res.status, 200)
  t.equal(echo.received.length, 0, 'forward auth proxies nothing')
  t.equal(res.headers.traceparent, undefined, 'the answer carries no traceparent')
  const spans = await traceSpans(gw, receiver, CLIENT_TRACE)
  const server = serverSpan(spans)
  t.equal(server?.name, 'forward-auth')
  t.equal(server?.parentSpanId, CLIENT_SPAN, 'the ingress\'s span is the parent')
  t.match(server?.attributes, { 'url.path': '/todos/1', 'scopegate.route': 'todos', 'http.response.status_code': 200 })
  const [decision] = named(spans, 'scopegate.decision')
  t.equal(decision?.parentSpanId, server?.spanId)
  t.match(decision?.attributes, { 'scopegate.decision': 'allow', 'scopegate.token.cache': 'miss', 'scopegate.issuer': 'main' })
  t.equal(named(spans, 'scopegate.verify_token')[0]?.parentSpanId, decision?.spanId)
  const line = gw.decisions().at(-1)
  t.equal(line?.trace_id, CLIENT_TRACE, 'the decision line names the trace')
  t.equal(line?.span_id, server?.spanId)

  const denied = await send(gw.adminUrl, '/decisions/todos/1', { headers: { traceparent: `00-${'04'.repeat(16)}-${CLIENT_SPAN}-01` } })
  t.equal(denied.status, 401)
  const deniedSpans = await traceSpans(gw, receiver, '04'.repeat(16))
  t.match(named(deniedSpans, 'scopegate.decision')[0]?.attributes, { 'scopegate.decision': 'deny', 'scopegate.reason': 'token_missing' })
})

t.test('tracing off (the default): nothing exported, no traceparent added, the client\'s passed on as any header', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const receiver = await receiverFor(t)
  // The variables alone do not turn tracing on: the config must.
  const gw = await startGateway(plainConfig(jwks, echo), { env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: 'off' } })
  const token = await mintToken(key, claims(jwks))
  t.equal((await send(gw.proxyUrl, '/todos', { headers: bearer(token) })).status, 200)
  t.equal(echo.received[0]?.headers.traceparent, undefined, 'no traceparent added')
  t.equal((await send(gw.proxyUrl, '/todos', { headers: { ...bearer(token), traceparent: TRACEPARENT } })).status, 200)
  t.equal(echo.received[1]?.headers.traceparent, TRACEPARENT, 'the client\'s own, untouched')
  t.equal(gw.gateway.tracing.current, null, 'no tracing loaded')
  t.notOk('trace_id' in (gw.decisions().at(-1) ?? {}), 'no trace id in the decision line')
  await gw.close()
  t.equal(receiver.requests, 0, 'the receiver got nothing, shutdown included')
})

t.test('OTEL_SDK_DISABLED=true turns tracing off whatever the config says', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const receiver = await receiverFor(t)
  const gw = await startGateway({
    ...plainConfig(jwks, echo),
    telemetry: { tracing: { enabled: true, endpoint: receiver.url } }
  }, { env: { OTEL_SDK_DISABLED: 'true' } })
  t.equal((await send(gw.proxyUrl, '/todos', { headers: bearer(await mintToken(key, claims(jwks))) })).status, 200)
  t.equal(echo.received[0]?.headers.traceparent, undefined)
  await gw.close()
  t.equal(receiver.requests, 0)
})

t.test('shutdown exports the spans still batched; OTLP/JSON when OTEL_EXPORTER_OTLP_PROTOCOL says so; resource from the variables', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const receiver = await receiverFor(t)
  const gw = await startGateway({
    ...plainConfig(jwks, echo),
    telemetry: { tracing: { enabled: true } }
  }, {
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'edge',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=staging,team=platform%20api'
    }
  })
  t.equal((await send(gw.proxyUrl, '/todos', { headers: bearer(await mintToken(key, claims(jwks))) })).status, 200)
  t.equal(echo.received.length, 1)
  t.equal(receiver.requests, 0, 'nothing sent yet: spans are batched')
  await gw.close()
  const server = serverSpan(receiver.spans)
  t.ok(server !== undefined, 'the server span was exported at shutdown')
  t.ok(receiver.contentTypes.every((type) => type.startsWith('application/json')), 'as OTLP/JSON')
  t.match(server?.resource, { 'service.name': 'edge', 'deployment.environment.name': 'staging', team: 'platform api' })
})

t.test('an introspection is a client span inside the verification; neither the opaque token nor the client secret is in any span', async (t) => {
  const { jwks, echo } = await issuerAndEcho(t)
  const SECRET = 'introspection-secret-5be1d0'
  const OPAQUE = 'opaque-5f0c8e2a9b7d4c1e'
  let calls = 0
  const introspection = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      calls++
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ active: true, iss: jwks.issuer, sub: 'bob', client_id: 'todo-cli', scope: 'read:todos', aud: API, exp: Math.floor(Date.now() / 1000) + 600 }))
    })
  })
  const port = await listenLocal(introspection)
  t.teardown(() => new Promise((resolve) => introspection.close(resolve)))
  const receiver = await receiverFor(t)
  const gw = await startGateway({
    server: { trustProxy: ['127.0.0.1/32'] },
    issuers: [{
      id: 'main',
      issuer: jwks.issuer,
      jwksUri: jwks.url,
      algorithms: ['ES256'],
      audiences: [API],
      introspection: { endpoint: `http://127.0.0.1:${port}/introspect`, clientId: 'gateway', clientSecret: SECRET, opaqueTokens: true }
    }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' }],
    telemetry: { tracing: { enabled: true, endpoint: receiver.url } }
  }, { env: {} })
  t.teardown(() => gw.close())
  const res = await send(gw.proxyUrl, '/todos', { headers: { ...bearer(OPAQUE), traceparent: TRACEPARENT } })
  t.equal(res.status, 200)
  t.equal(calls, 1, 'the issuer was asked once')
  t.equal(echo.received.length, 1)
  const spans = await traceSpans(gw, receiver, CLIENT_TRACE, (trace) => named(trace, 'scopegate.introspection').length > 0)
  const [asked] = named(spans, 'scopegate.introspection')
  t.equal(asked?.parentSpanId, named(spans, 'scopegate.verify_token')[0]?.spanId, 'the introspection is inside the verification')
  t.match(asked?.attributes, { 'http.request.method': 'POST', 'url.full': `http://127.0.0.1:${port}/introspect`, 'http.response.status_code': 200, 'scopegate.issuer': 'main' })
  t.match(named(spans, 'scopegate.decision')[0]?.attributes, { 'scopegate.token.path': 'introspection', 'scopegate.token.cache': 'miss', 'scopegate.client_id': 'todo-cli' })
  const all = everyValue(receiver.spans)
  t.notOk(all.includes(OPAQUE), 'no opaque token')
  t.notOk(all.includes(SECRET), 'no client secret')
  t.notOk(all.includes(Buffer.from(`gateway:${SECRET}`).toString('base64')), 'no Basic credentials')
  t.notOk(all.includes('bob'), 'no subject')
})
