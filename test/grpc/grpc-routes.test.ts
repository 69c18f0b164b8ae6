/**
 * gRPC method paths against scopegate's router and path normalization (docs/grpc.md, "Routes"): a
 * service prefix matches its methods whether it is written with a trailing `/` or not, never another
 * service whose name it starts; an exact route on one method beats it; the dots of package names are
 * not dot segments, so normalization leaves `/pkg.v1.Service/Method` as it is.
 */
import t from 'tap'
import { normalizeTarget } from '../../src/request/normalize-path.js'
import { buildRouteTable } from '../../src/routing/route-table.js'
import { compileTestConfig } from '../helpers/gateway.js'

t.test('service and method routes', async (t) => {
  for (const prefix of ['/acme.orders.v1.Orders', '/acme.orders.v1.Orders/']) {
    const config = compileTestConfig({
      upstreams: { orders: { url: 'http://orders:50051', http2: true } },
      routes: [
        { id: 'upload', match: { path: '/acme.orders.v1.Orders/Upload' }, upstream: 'orders', auth: 'none' },
        { id: 'service', match: { path: prefix, prefix: true }, upstream: 'orders', auth: 'none' }
      ]
    })
    const table = buildRouteTable(config.routes)
    const cases: Array<[string, string | null]> = [
      ['/acme.orders.v1.Orders/Get', 'service'],
      ['/acme.orders.v1.Orders/Upload', 'upload'],
      ['/acme.orders.v1.OrdersAdmin/Get', null],
      ['/acme.orders.v1.Order/Get', null],
      ['/grpc.health.v1.Health/Check', null]
    ]
    for (const [path, route] of cases) t.equal(table.match('POST', path, '')?.id ?? null, route, `${prefix}: ${path}`)
  }
})

t.test('normalization leaves method paths alone', async (t) => {
  for (const path of ['/acme.orders.v1.Orders/Get', '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo', '/a_b.C-d/E']) {
    t.equal(normalizeTarget(path).path, path)
  }
})
