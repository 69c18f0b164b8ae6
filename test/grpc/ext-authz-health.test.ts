/**
 * The standard gRPC health service on the ext_authz listener (docs/istio.md#health-checks), asked by a real
 * @grpc/grpc-js client as Envoy's `grpc_health_check` and the kubelet's `grpc:` probe ask it: SERVING when
 * /readyz says ready, NOT_SERVING when the issuer's keys could not be fetched and from the moment shutdown
 * begins (while Checks are still answered), NOT_FOUND for an unknown service, `Watch` streaming the change
 * and ending when the listener closes. The upstream sees nothing of any of it.
 */
import * as grpc from '@grpc/grpc-js'
import t, { type Test } from 'tap'
import { closedPort } from '../helpers/echo-upstream.js'
import { envoyCheckRequest, extAuthzClient, healthClient, type HealthClient } from '../helpers/ext-authz-client.js'
import { issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'

const API = 'https://todo.api'
const AUTHORIZATION = 'envoy.service.auth.v3.Authorization'

function portOf (g: TestGateway): number {
  const port = g.gateway.extAuthz?.boundPort
  if (port == null) throw new Error('no ext_authz listener')
  return port
}

/** Waits, bounded (100 × 50 ms), until `ready` holds. */
async function until (ready: () => boolean): Promise<boolean> {
  for (let i = 0; i < 100 && !ready(); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  return ready()
}

const notFound = async (t: Test, health: HealthClient, service: string): Promise<void> => {
  try {
    await health.check(service)
    t.fail(`${service}: answered`)
  } catch (err) {
    t.equal((err as grpc.ServiceError).code, grpc.status.NOT_FOUND, `${JSON.stringify(service)}: NOT_FOUND`)
    t.notOk((err as grpc.ServiceError).details.includes(service), 'the name asked for is not echoed')
  }
}

t.test('SERVING when ready, NOT_SERVING from the start of shutdown, NOT_FOUND for an unknown service; Watch follows', async (t) => {
  const { jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { shutdownTimeout: '20s', extAuthz: { host: '127.0.0.1', port: 0 } },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'open', match: { path: '/open', prefix: true }, upstream: 'todo', auth: 'none' }]
  })
  t.teardown(() => gw.close())
  const health = healthClient(`127.0.0.1:${portOf(gw)}`)
  t.teardown(() => health.close())
  const authz = extAuthzClient(`127.0.0.1:${portOf(gw)}`)
  t.teardown(() => authz.close())

  t.same(await health.check(), { status: 'SERVING' }, 'the server as a whole')
  t.same(await health.check(AUTHORIZATION), { status: 'SERVING' }, 'the Authorization service')
  t.same(await health.list(), { statuses: { '': { status: 'SERVING' }, [AUTHORIZATION]: { status: 'SERVING' } } })
  for (const service of ['grpc.health.v1.Health', 'envoy.service.auth.v2.Authorization', 'x'.repeat(5000)]) await notFound(t, health, service)
  t.equal((await send(gw.adminUrl, '/readyz')).status, 200, '/readyz agrees')

  const watch = health.watch()
  const unknown = health.watch('nope')
  t.ok(await until(() => watch.received.length === 1 && unknown.received.length === 1), 'each watch is told the status at once')
  t.same(watch.received, [{ status: 'SERVING' }])
  t.same(unknown.received, [{ status: 'SERVICE_UNKNOWN' }], 'an unknown service is SERVICE_UNKNOWN')
  t.equal(unknown.ended(), null, 'and the watch stays open, as the proto says')

  // A proxied request the upstream never answers holds the proxy listener's drain open, the ext_authz
  // listener with it: long enough to ask it while the gateway is shutting down.
  echo.setMode('hang')
  const held = send(gw.proxyUrl, '/open/held').catch(() => null)
  t.ok(await until(() => echo.received.length === 1), 'the held request reached the upstream')
  const closed = gw.close()
  t.ok(await until(() => watch.received.length === 2), 'the watch hears of the shutdown')
  t.same(watch.received[1], { status: 'NOT_SERVING' })
  t.same(await health.check(), { status: 'NOT_SERVING' }, 'Check says NOT_SERVING while draining')
  t.equal((await send(gw.adminUrl, '/readyz')).status, 503, 'as /readyz does')
  t.equal((await authz.check(envoyCheckRequest({ path: '/open/x' }))).status?.code, 0, 'Checks are still answered meanwhile')
  // The upstream goes away: the held request ends, the proxy listener's drain with it, and the ext_authz
  // listener closes well within the shutdown timeout, ending its watches.
  await echo.close()
  await closed
  await held
  t.ok(await until(() => watch.ended() !== null && unknown.ended() !== null), 'the watches end when the listener closes')
  t.equal(watch.ended()?.code, grpc.status.OK)
  t.same(unknown.received, [{ status: 'SERVICE_UNKNOWN' }], 'the unknown watch was told nothing more')
  t.equal(echo.received.length, 1, 'the upstream saw the held request only')
  t.match(gw.decisions().filter((l) => l.endpoint === 'ext_authz'), [{ path: '/open/x', decision: 'allow' }], 'one Check decided: the one asked while draining')
})

t.test('NOT_SERVING while the issuer has no usable keys, as /readyz', async (t) => {
  const { echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { extAuthz: { host: '127.0.0.1', port: 0 } },
    issuers: [{ id: 'main', issuer: 'https://issuer.example', jwksUri: `${await closedPort()}/jwks`, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' }]
  })
  t.teardown(() => gw.close())
  const health = healthClient(`127.0.0.1:${portOf(gw)}`)
  t.teardown(() => health.close())
  const readyz = await send(gw.adminUrl, '/readyz')
  t.equal(readyz.status, 503)
  t.same(await health.check(), { status: 'NOT_SERVING' })
  t.same(await health.check(AUTHORIZATION), { status: 'NOT_SERVING' })
  const watch = health.watch(AUTHORIZATION)
  t.teardown(() => { watch.cancel() })
  t.ok(await until(() => watch.received.length === 1))
  t.same(watch.received, [{ status: 'NOT_SERVING' }])
  t.equal(echo.received.length, 0, 'the upstream saw nothing')
})
