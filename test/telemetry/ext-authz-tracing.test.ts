/**
 * Tracing of ext_authz Checks (docs/istio.md#tracing, docs/observability.md#spans): a real gateway with its
 * gRPC listener exports to the OTLP receiver of the tracing tests, asked by a real @grpc/grpc-js client.
 * Asserted: each Check is a server span `ext_authz` with the decision (and verification) spans inside and the
 * RPC and decision attributes; its parent is the `traceparent` of the call's own metadata (Envoy's ext_authz
 * span) or else of the original request's headers, from a trusted peer only; denials and refused Checks are
 * spans too; the decision line names the trace; no token or Authorization value is in any span; the
 * upstream sees nothing.
 */
import * as grpc from '@grpc/grpc-js'
import t, { type Test } from 'tap'
import { envoyCheckRequest, extAuthzClient, type ExtAuthzClient } from '../helpers/ext-authz-client.js'
import { issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import { mintToken, type JwksServer, type TestKey } from '../helpers/jwks-server.js'
import { exported, inTrace, named, serverSpan } from './exported-spans.js'
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.js'

const API = 'https://todo.api'
const CLIENT_SPAN = '00f067aa0ba902b7'
const traceOf = (byte: string): string => byte.repeat(16)
const traceparent = (trace: string): string => `00-${trace}-${CLIENT_SPAN}-01`

interface Setup { key: TestKey, jwks: JwksServer, receiver: OtlpReceiver, gw: TestGateway, client: ExtAuthzClient, echoed: () => number }

async function setup (t: Test, trustProxy: string[]): Promise<Setup> {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const receiver = await startOtlpReceiver()
  t.teardown(() => receiver.close())
  const gw = await startGateway({
    server: { trustProxy, extAuthz: { host: '127.0.0.1', port: 0 } },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } } }],
    telemetry: { tracing: { enabled: true, endpoint: receiver.url } }
  }, { env: {} })
  t.teardown(() => gw.close())
  const client = extAuthzClient(`127.0.0.1:${gw.gateway.extAuthz?.boundPort ?? 0}`)
  t.teardown(() => client.close())
  return { key, jwks, receiver, gw, client, echoed: () => echo.received.length }
}

function withTraceparent (value: string): grpc.Metadata {
  const metadata = new grpc.Metadata()
  metadata.set('traceparent', value)
  return metadata
}

t.test('a trusted peer\'s Check: server span ext_authz continued from the request\'s traceparent, decision and verification inside', async (t) => {
  const { key, jwks, receiver, gw, client, echoed } = await setup(t, ['127.0.0.1/32'])
  const token = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice', client_id: 'todo-web', scope: 'read:todos' })
  const trace = traceOf('a1')
  const res = await client.check(envoyCheckRequest({ path: '/todos/1?access=secret-query', headers: { authorization: `Bearer ${token}`, traceparent: traceparent(trace) } }))
  t.equal(res.status?.code, 0)
  const spans = inTrace(await exported(gw, receiver, (s) => serverSpan(inTrace(s, trace)) !== undefined && named(inTrace(s, trace), 'scopegate.decision').length > 0), trace)
  const server = serverSpan(spans)
  t.equal(server?.name, 'ext_authz')
  t.equal(server?.parentSpanId, CLIENT_SPAN, 'the original request\'s span is the parent')
  t.match(server?.attributes, {
    'rpc.system': 'grpc',
    'rpc.service': 'envoy.service.auth.v3.Authorization',
    'rpc.method': 'Check',
    'rpc.grpc.status_code': 0,
    'http.request.method': 'GET',
    'url.path': '/todos/1',
    'http.route': '/todos',
    'scopegate.route': 'todos',
    'http.response.status_code': 200
  })
  const [decision] = named(spans, 'scopegate.decision')
  t.equal(decision?.parentSpanId, server?.spanId, 'the decision is inside the server span')
  t.match(decision?.attributes, { 'scopegate.decision': 'allow', 'scopegate.reason': 'allowed', 'scopegate.token.cache': 'miss', 'scopegate.issuer': 'main', 'scopegate.client_id': 'todo-web' })
  t.equal(named(spans, 'scopegate.verify_token')[0]?.parentSpanId, decision?.spanId, 'the verification is inside the decision')
  const line = gw.decisions().at(-1)
  t.match(line, { endpoint: 'ext_authz', trace_id: trace, span_id: server?.spanId }, 'the decision line names the trace')
  const all = JSON.stringify(receiver.spans.map((s) => [s.name, s.attributes, s.events]))
  for (const secret of [token, ...token.split('.'), 'Bearer', 'secret-query']) t.notOk(all.includes(secret), 'no token, part of one, Authorization value or query in any span')
  t.equal(echoed(), 0, 'the upstream saw nothing')
})

t.test('the call\'s own traceparent (Envoy\'s ext_authz span) wins over the request\'s; denials and refused Checks are spans', async (t) => {
  const { receiver, gw, client, echoed } = await setup(t, ['127.0.0.1/32'])
  const envoySpan = traceOf('b2')
  const requestSpan = traceOf('c3')
  const denied = await client.check(envoyCheckRequest({ path: '/todos/1', headers: { traceparent: traceparent(requestSpan) } }), withTraceparent(traceparent(envoySpan)))
  t.equal(denied.status?.code, 16)
  const spans = inTrace(await exported(gw, receiver, (s) => serverSpan(inTrace(s, envoySpan)) !== undefined), envoySpan)
  t.equal(serverSpan(spans)?.parentSpanId, CLIENT_SPAN, 'continued from the metadata')
  t.equal(inTrace(receiver.spans, requestSpan).length, 0, 'not from the request\'s headers')
  t.match(named(spans, 'scopegate.decision')[0]?.attributes, { 'scopegate.decision': 'deny', 'scopegate.reason': 'token_missing', 'scopegate.status': 401 })
  t.equal(serverSpan(spans)?.attributes['http.response.status_code'], 401)

  const malformed = traceOf('d4')
  const refused = await client.check({ attributes: { request: { http: { method: 'GET', path: 'no-slash' } } } }, withTraceparent(traceparent(malformed)))
  t.equal(refused.denied_response?.status?.code, 'BadRequest', 'a 400 (enums decoded as their names)')
  const refusedSpans = inTrace(await exported(gw, receiver, (s) => serverSpan(inTrace(s, malformed)) !== undefined), malformed)
  t.match(serverSpan(refusedSpans)?.attributes, { 'http.request.method': 'GET', 'http.response.status_code': 400 })
  t.match(named(refusedSpans, 'scopegate.decision')[0]?.attributes, { 'scopegate.decision': 'deny', 'scopegate.status': 400 })
  t.match(gw.decisions().at(-1), { endpoint: 'ext_authz', status: 400, trace_id: malformed })
  t.equal(echoed(), 0, 'the upstream saw nothing')
})

t.test('an untrusted peer\'s traceparent starts no trace of its: the Check gets a trace of its own', async (t) => {
  const { receiver, gw, client, echoed } = await setup(t, ['10.0.0.0/8'])
  const asked = traceOf('e5')
  await client.check(envoyCheckRequest({ path: '/todos/1', headers: { traceparent: traceparent(asked) } }), withTraceparent(traceparent(asked)))
  const line = gw.decisions().at(-1)
  const own = String(line?.trace_id)
  t.match(own, /^[0-9a-f]{32}$/, 'the decision line names a trace')
  t.not(own, asked, 'not the one the peer named')
  const spans = inTrace(await exported(gw, receiver, (s) => serverSpan(inTrace(s, own)) !== undefined), own)
  t.equal(serverSpan(spans)?.name, 'ext_authz')
  t.equal(serverSpan(spans)?.parentSpanId, '', 'a root span')
  t.equal(inTrace(receiver.spans, asked).length, 0)
  t.equal(echoed(), 0, 'the upstream saw nothing')
})
