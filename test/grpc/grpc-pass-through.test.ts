/**
 * gRPC through scopegate (docs/grpc.md), with the reference implementation on both sides: a @grpc/grpc-js
 * client speaking h2c to the proxy listener (`server.proxy.http2`), a @grpc/grpc-js server as the
 * `http2: true` upstream. Every kind of call (unary, server streaming, client streaming, bidi) is allowed
 * with the identity as metadata the upstream sees (never the client's copy), headers and trailers (custom
 * ones, an error status) coming back intact; refused with UNAUTHENTICATED or PERMISSION_DENIED and a
 * message the client reads, the upstream seeing no call; UNAVAILABLE when the upstream is down.
 */
import { fileURLToPath } from 'node:url'
import grpc from '@grpc/grpc-js'
import protoLoader from '@grpc/proto-loader'
import t, { type Test } from 'tap'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { makeKey, mintToken, startJwksServer } from '../helpers/jwks-server.js'
import { curl } from '../helpers/tls-clients.js'

const AUD = 'https://orders.api'
const SERVICE = '/scopegate.test.Orders'

interface Order { id: string, note: string }
interface OrderRequest { id: string, count: number }
interface Summary { count: number, ids: string }

const definition = protoLoader.loadSync(fileURLToPath(new URL('orders.proto', import.meta.url)), { defaults: true })
const loaded = grpc.loadPackageDefinition(definition) as unknown as {
  scopegate: { test: { Orders: grpc.ServiceClientConstructor } }
}
const Orders = loaded.scopegate.test.Orders

/** A call the upstream received: its method path and the metadata it carried. */
interface UpstreamCall { path: string, metadata: Record<string, grpc.MetadataValue[]> }

interface Upstream {
  address: string
  calls: UpstreamCall[]
  /** The method paths of calls the upstream saw cancelled. */
  cancelled: string[]
  close: () => Promise<void>
}

function trailer (): grpc.Metadata {
  const metadata = new grpc.Metadata()
  metadata.set('x-custom-trailer', 'from-upstream')
  return metadata
}

/** The upstream: a grpc-js server on 127.0.0.1 (h2c), recording every call it receives. */
async function startUpstream (t: Test): Promise<Upstream> {
  const calls: UpstreamCall[] = []
  const cancelled: string[] = []
  const record = (path: string, metadata: grpc.Metadata): void => {
    const map: Record<string, grpc.MetadataValue[]> = {}
    for (const name of Object.keys(metadata.getMap())) map[name] = metadata.get(name)
    calls.push({ path, metadata: map })
  }
  const server = new grpc.Server()
  server.addService(Orders.service, {
    Get: (call: grpc.ServerUnaryCall<OrderRequest, Order>, callback: grpc.sendUnaryData<Order>) => {
      record(`${SERVICE}/Get`, call.metadata)
      const headers = new grpc.Metadata()
      headers.set('x-custom-header', 'early')
      call.sendMetadata(headers)
      if (call.request.id === 'missing') {
        callback({ code: grpc.status.NOT_FOUND, details: 'no order "missing" – sorry', metadata: trailer() })
        return
      }
      callback(null, { id: call.request.id, note: 'found' }, trailer())
    },
    List: (call: grpc.ServerWritableStream<OrderRequest, Order>) => {
      record(`${SERVICE}/List`, call.metadata)
      if (call.request.id === 'endless') {
        // One message, then the stream stays open until the client cancels it.
        call.write({ id: 'first', note: 'more to come' })
        call.on('cancelled', () => { cancelled.push(`${SERVICE}/List`) })
        return
      }
      for (let i = 0; i < call.request.count; i++) call.write({ id: `${call.request.id}-${i}`, note: 'listed' })
      call.end(trailer())
    },
    Upload: (call: grpc.ServerReadableStream<Order, Summary>, callback: grpc.sendUnaryData<Summary>) => {
      record(`${SERVICE}/Upload`, call.metadata)
      const ids: string[] = []
      call.on('data', (order: Order) => ids.push(order.id))
      call.on('end', () => { callback(null, { count: ids.length, ids: ids.join(',') }, trailer()) })
    },
    Chat: (call: grpc.ServerDuplexStream<Order, Order>) => {
      record(`${SERVICE}/Chat`, call.metadata)
      call.on('data', (order: Order) => { call.write({ id: order.id, note: `echo ${order.note}` }) })
      call.on('end', () => { call.end(trailer()) })
    }
  })
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) => { if (err !== null) reject(err); else resolve(bound) })
  })
  const close = (): Promise<void> => new Promise((resolve) => { server.forceShutdown(); resolve() })
  t.teardown(close)
  return { address: `127.0.0.1:${port}`, calls, cancelled, close }
}

type OrdersClient = grpc.Client & {
  Get: (request: Partial<OrderRequest>, metadata: grpc.Metadata, callback: (err: grpc.ServiceError | null, order?: Order) => void) => grpc.ClientUnaryCall
  List: (request: Partial<OrderRequest>, metadata: grpc.Metadata) => grpc.ClientReadableStream<Order>
  Upload: (metadata: grpc.Metadata, callback: (err: grpc.ServiceError | null, summary?: Summary) => void) => grpc.ClientWritableStream<Order>
  Chat: (metadata: grpc.Metadata) => grpc.ClientDuplexStream<Order, Order>
}

function client (t: Test, gw: TestGateway): OrdersClient {
  const c = new Orders(new URL(gw.proxyUrl).host, grpc.credentials.createInsecure()) as unknown as OrdersClient
  t.teardown(() => { c.close() })
  return c
}

function metadata (entries: Record<string, string>): grpc.Metadata {
  const m = new grpc.Metadata()
  for (const [name, value] of Object.entries(entries)) m.set(name, value)
  return m
}

/** A unary Get: the response or error, the response headers and the final status. */
function get (c: OrdersClient, id: string, meta: grpc.Metadata): Promise<{ err: grpc.ServiceError | null, order?: Order, headers?: grpc.Metadata, status: grpc.StatusObject }> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined
    let outcome: { err: grpc.ServiceError | null, order?: Order } | undefined
    let status: grpc.StatusObject | undefined
    const settle = (): void => { if (outcome !== undefined && status !== undefined) resolve({ ...outcome, headers, status }) }
    const call = c.Get({ id }, meta, (err, order) => { outcome = { err, order }; settle() })
    call.on('metadata', (m: grpc.Metadata) => { headers = m })
    call.on('status', (s: grpc.StatusObject) => { status = s; settle() })
  })
}

/** Every message of a server stream and its final status (an error ends it with its status too). */
function collect<T> (stream: grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<unknown, T>): Promise<{ messages: T[], status: grpc.StatusObject }> {
  return new Promise((resolve) => {
    const messages: T[] = []
    stream.on('data', (m: T) => messages.push(m))
    stream.on('error', () => {})
    stream.on('status', (status: grpc.StatusObject) => { resolve({ messages, status }) })
  })
}

t.test('gRPC pass-through', async (t) => {
  const key = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  const upstream = await startUpstream(t)
  const config = (address: string): Record<string, unknown> => ({
    server: { proxy: { http2: true } },
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { orders: { url: `http://${address}`, http2: true } },
    routes: [
      // Exact beats prefix: uploading takes a scope the rest of the service does not.
      { id: 'orders-upload', match: { path: `${SERVICE}/Upload` }, upstream: 'orders', policy: { scopes: { require: ['orders.write'] } } },
      { id: 'orders', match: { path: SERVICE, prefix: true }, upstream: 'orders', policy: { scopes: { require: ['orders.read'] } } }
    ]
  })
  const gw = await startGateway(config(upstream.address))
  t.teardown(() => gw.close())
  const reader = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', scope: 'orders.read' })
  const auth = (token: string, extra: Record<string, string> = {}): grpc.Metadata => metadata({ authorization: `Bearer ${token}`, ...extra })
  const c = client(t, gw)

  t.test('unary: allowed, identity as metadata, headers and trailers back', async (t) => {
    const before = upstream.calls.length
    const res = await get(c, 'o-1', auth(reader, { 'x-auth-subject': 'mallory', 'x-forwarded-for': '10.9.9.9' }))
    t.equal(res.err, null)
    t.same(res.order, { id: 'o-1', note: 'found' })
    t.equal(res.status.code, grpc.status.OK)
    t.same(res.headers?.get('x-custom-header'), ['early'], 'the upstream\'s response headers')
    t.same(res.status.metadata.get('x-custom-trailer'), ['from-upstream'], 'the upstream\'s custom trailer')
    const seen = upstream.calls.slice(before)
    t.equal(seen.length, 1)
    t.equal(seen[0]?.path, `${SERVICE}/Get`, 'the method path, not mangled by normalization')
    t.same(seen[0]?.metadata['x-auth-subject'], ['alice'], 'scopegate\'s identity, not the client\'s copy')
    t.same(seen[0]?.metadata['x-auth-route'], ['orders'])
    t.same(seen[0]?.metadata['x-auth-scopes'], ['orders.read'])
    t.notSame(seen[0]?.metadata['x-forwarded-for'], ['10.9.9.9'])
    t.match(gw.decisions().at(-1), { decision: 'allow', route: 'orders', path: `${SERVICE}/Get`, status: 200 })
  })

  t.test('unary: the upstream\'s error status and trailers reach the client', async (t) => {
    const res = await get(c, 'missing', auth(reader))
    t.equal(res.status.code, grpc.status.NOT_FOUND)
    t.equal(res.status.details, 'no order "missing" – sorry', 'grpc-message decoded as sent, non-ASCII included')
    t.same(res.status.metadata.get('x-custom-trailer'), ['from-upstream'])
  })

  t.test('server streaming', async (t) => {
    const { messages, status } = await collect(c.List({ id: 'batch', count: 5 }, auth(reader)))
    t.same(messages.map((m) => m.id), ['batch-0', 'batch-1', 'batch-2', 'batch-3', 'batch-4'])
    t.equal(status.code, grpc.status.OK)
    t.same(status.metadata.get('x-custom-trailer'), ['from-upstream'])
  })

  t.test('a client that cancels a stream cancels the upstream call', async (t) => {
    const call = c.List({ id: 'endless', count: 0 }, auth(reader))
    const first = await new Promise<Order>((resolve) => { call.once('data', resolve) })
    t.same(first, { id: 'first', note: 'more to come' })
    // Polled, bounded: at most 1000 looks 10 ms apart; the assertion below fails if it never came.
    const seenCancelled = new Promise<void>((resolve) => {
      let looks = 0
      const check = (): void => { if (upstream.cancelled.length > 0 || ++looks > 1000) resolve(); else setTimeout(check, 10) }
      check()
    })
    call.on('error', () => {})
    call.cancel()
    await seenCancelled
    t.same(upstream.cancelled, [`${SERVICE}/List`], 'the upstream saw the call cancelled')
  })

  t.test('client streaming: allowed with the write scope, denied without it', async (t) => {
    const writer = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'bob', scope: 'orders.read orders.write' })
    const summary = await new Promise<{ err: grpc.ServiceError | null, summary?: Summary }>((resolve) => {
      const call = c.Upload(auth(writer), (err, summary) => { resolve({ err, summary }) })
      for (const id of ['a', 'b', 'c']) call.write({ id, note: 'n' })
      call.end()
    })
    t.equal(summary.err, null)
    t.same(summary.summary, { count: 3, ids: 'a,b,c' })
    t.same(upstream.calls.at(-1)?.metadata['x-auth-subject'], ['bob'])

    const before = upstream.calls.length
    const denied = await new Promise<grpc.ServiceError | null>((resolve) => {
      const call = c.Upload(auth(reader), (err) => { resolve(err) })
      call.write({ id: 'x', note: 'n' })
      call.end()
    })
    t.equal(denied?.code, grpc.status.PERMISSION_DENIED)
    t.equal(denied?.details, 'the token does not grant the scopes this route requires')
    t.equal(upstream.calls.length, before, 'the upstream saw no call')
    t.match(gw.decisions().at(-1), { decision: 'deny', route: 'orders-upload', reason: 'scope_insufficient', status: 200 })
  })

  t.test('bidi streaming', async (t) => {
    const call = c.Chat(auth(reader))
    const done = collect(call)
    for (const id of ['1', '2', '3']) call.write({ id, note: `ping ${id}` })
    call.end()
    const { messages, status } = await done
    t.same(messages, [{ id: '1', note: 'echo ping 1' }, { id: '2', note: 'echo ping 2' }, { id: '3', note: 'echo ping 3' }])
    t.equal(status.code, grpc.status.OK)
    t.same(status.metadata.get('x-custom-trailer'), ['from-upstream'])
  })

  t.test('refused: UNAUTHENTICATED, with a message the client reads, and no call upstream', async (t) => {
    const before = upstream.calls.length
    const missing = await get(c, 'o-1', new grpc.Metadata())
    t.equal(missing.status.code, grpc.status.UNAUTHENTICATED)
    t.equal(missing.status.details, 'a bearer token is required')
    const forged = `${reader.slice(0, -4)}AAAA`
    const invalid = await get(c, 'o-1', auth(forged))
    t.equal(invalid.status.code, grpc.status.UNAUTHENTICATED)
    t.notMatch(invalid.status.details, forged.slice(-20), 'never the token')
    const streamed = await collect(c.List({ id: 'x', count: 2 }, new grpc.Metadata()))
    t.equal(streamed.status.code, grpc.status.UNAUTHENTICATED)
    t.same(streamed.messages, [])
    t.equal(upstream.calls.length, before, 'the upstream saw no call')
    t.match(gw.decisions().at(-1), { decision: 'deny', reason: 'token_missing', status: 200 })
    t.notMatch(gw.rawLog(), forged, 'the token is never logged')
  })

  t.test('a service no route names: UNIMPLEMENTED', async (t) => {
    const other = new grpc.Client(new URL(gw.proxyUrl).host, grpc.credentials.createInsecure())
    t.teardown(() => { other.close() })
    const status = await new Promise<grpc.ServiceError | null>((resolve) => {
      other.makeUnaryRequest('/scopegate.test.Other/Get', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), auth(reader), (err) => { resolve(err) })
    })
    t.equal(status?.code, grpc.status.UNIMPLEMENTED)
  })

  t.test('curl sees the trailers-only answer: HTTP 200, grpc-status 16', async (t) => {
    const res = await curl(`${gw.proxyUrl}${SERVICE}/Get`,
      ['-i', '--http2-prior-knowledge', '-H', 'content-type: application/grpc', '-H', 'te: trailers', '--data-binary', ''])
    t.equal(res.status, 200)
    t.equal(res.httpVersion, '2')
    t.match(res.body, /^grpc-status: 16\r$/m)
    t.match(res.body, /^grpc-message: a bearer token is required\r$/m)
    t.match(res.body, /^content-type: application\/grpc\r$/m)
  })

  t.test('the upstream down: UNAVAILABLE', async (t) => {
    const gone = await startUpstream(t)
    await gone.close()
    const down = await startGateway(config(gone.address))
    t.teardown(() => down.close())
    const res = await get(client(t, down), 'o-1', auth(reader))
    t.equal(res.status.code, grpc.status.UNAVAILABLE)
    t.equal(res.status.details, 'the upstream could not be reached')
    t.match(down.decisions().at(-1), { decision: 'allow', reason: 'upstream_refused', status: 200 })
  })
})
