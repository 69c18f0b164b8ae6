/**
 * gRPC-shaped refusals (docs/grpc.md, "Denials"): which requests are gRPC, the HTTP-to-gRPC status table,
 * `grpc-message` percent-encoding, and the trailers-only header set (never the detail, never a token).
 */
import t from 'tap'
import { grpcErrorHeaders, grpcMessage, isGrpcRequest } from '../../src/http/grpc-error.js'
import { GRPC_STATUS, grpcStatusOf } from '../../src/shared/grpc-status.js'
import { GatewayError, deny } from '../../src/shared/errors.js'

t.test('which content types are gRPC', async (t) => {
  const cases: Array<[string | undefined, boolean]> = [
    ['application/grpc', true],
    ['application/grpc+proto', true],
    ['application/grpc+json', true],
    ['Application/GRPC; charset=utf-8', true],
    ['application/grpc-web', false],
    ['application/grpc-web+proto', false],
    ['application/grpcx', false],
    ['application/json', false],
    [undefined, false]
  ]
  for (const [type, grpc] of cases) t.equal(isGrpcRequest(type), grpc, String(type))
})

t.test('HTTP status to gRPC status', async (t) => {
  const cases: Array<[number, number]> = [
    [401, GRPC_STATUS.UNAUTHENTICATED],
    [403, GRPC_STATUS.PERMISSION_DENIED],
    [429, GRPC_STATUS.RESOURCE_EXHAUSTED],
    [502, GRPC_STATUS.UNAVAILABLE],
    [503, GRPC_STATUS.UNAVAILABLE],
    [504, GRPC_STATUS.UNAVAILABLE],
    [404, GRPC_STATUS.UNIMPLEMENTED],
    [400, GRPC_STATUS.INVALID_ARGUMENT],
    [431, GRPC_STATUS.INVALID_ARGUMENT],
    [500, GRPC_STATUS.INTERNAL],
    [501, GRPC_STATUS.UNKNOWN]
  ]
  for (const [http, grpc] of cases) t.equal(grpcStatusOf(http), grpc, String(http))
  t.same([GRPC_STATUS.UNAUTHENTICATED, GRPC_STATUS.PERMISSION_DENIED, GRPC_STATUS.RESOURCE_EXHAUSTED, GRPC_STATUS.UNAVAILABLE], [16, 7, 8, 14],
    'the numbers of the gRPC status code table')
})

t.test('grpc-message is percent-encoded as the gRPC wire format says', async (t) => {
  t.equal(grpcMessage('a bearer token is required'), 'a bearer token is required', 'space and visible ASCII as they are')
  t.equal(grpcMessage('100% done'), '100%25 done', '% itself')
  t.equal(grpcMessage('line\nbreak\r'), 'line%0Abreak%0D')
  t.equal(grpcMessage('café ✓'), 'caf%C3%A9 %E2%9C%93', 'UTF-8 bytes')
})

t.test('the trailers-only header set', async (t) => {
  const missing = grpcErrorHeaders(deny.tokenMissing())
  t.same(missing, {
    'www-authenticate': 'Bearer realm="scopegate"',
    'content-type': 'application/grpc',
    'grpc-status': '16',
    'grpc-message': 'a bearer token is required'
  })
  const scope = grpcErrorHeaders(deny.insufficientScope(403, ['orders.read'], 'token had none'))
  t.equal(scope['grpc-status'], '7')
  t.equal(scope['grpc-message'], 'the token does not grant the scopes this route requires')
  t.notMatch(JSON.stringify(scope), /token had none/, 'the detail stays in the log')

  const limited = grpcErrorHeaders(deny.rateLimited(3, { ratelimit: 'limit=10, remaining=0, reset=3' }))
  t.match(limited, { 'grpc-status': '8', 'retry-after': '3', ratelimit: 'limit=10, remaining=0, reset=3' })

  const down = grpcErrorHeaders(new GatewayError(502, 'bad_gateway', 'upstream_tls', 'the upstream could not be reached', { detail: 'orders: CERT_HAS_EXPIRED' }))
  t.same(down, { 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'the upstream could not be reached' })
})
