/**
 * TLS and mutual TLS on the ext_authz gRPC listener (docs/istio.md#tls), with certificates made by openssl
 * for the test and a real @grpc/grpc-js client: a Check over mTLS is answered exactly as over h2c; a
 * plaintext client, a client without a certificate (`require`) and a client whose certificate another CA
 * signed are refused at the handshake, and no Check of theirs is decided; the certificate is rotated
 * without a restart (a symlink swap, as a Kubernetes secret volume does) and a new connection sees the
 * new one while an open one goes on; a bad new set is refused; `validate`'s problems name their config path.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import tls from 'node:tls'
import * as grpc from '@grpc/grpc-js'
import t from 'tap'
import { certificateKit, type Issued } from '../helpers/certificates.js'
import { envoyCheckRequest, extAuthzClient, healthClient } from '../helpers/ext-authz-client.js'
import { compileTestConfig, issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import { mintToken } from '../helpers/jwks-server.js'
import { secretVolume } from '../helpers/secret-volume.js'
import { ConfigError } from '../../src/config/problems.js'

const API = 'https://todo.api'
const kit = certificateKit()
t.teardown(() => { kit.remove() })
const server = kit.issue('ext-authz')
const envoy = kit.issue('envoy', { client: true })
const stranger = kit.authority('stranger')
const impostor = kit.issue('impostor', { client: true, by: stranger })

function portOf (g: TestGateway): number {
  const port = g.gateway.extAuthz?.boundPort
  if (port == null) throw new Error('no ext_authz listener')
  return port
}

const readKey = (issued: Issued): string => readFileSync(issued.key, 'utf8')

/** A gRPC client's TLS: the test CA as its roots, and `client`'s certificate when given. */
const mtls = (client: Issued | null): grpc.ChannelCredentials => grpc.credentials.createSsl(
  Buffer.from(kit.ca.pem),
  client === null ? null : Buffer.from(readKey(client)),
  client === null ? null : Buffer.from(client.pem)
)

/** The serial of the certificate a new TLS connection to the listener is shown (ALPN h2, as gRPC asks). */
function presented (port: number, client: Issued | null = envoy): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: kit.ca.pem,
      ALPNProtocols: ['h2'],
      ...(client === null ? {} : { cert: client.pem, key: readKey(client) })
    }, () => {
      resolve(socket.getPeerCertificate().serialNumber)
      socket.destroy()
    })
    socket.setTimeout(10_000, () => { socket.destroy(new Error('TLS connect timed out')) })
    socket.once('error', reject)
  })
}

t.test('mTLS with require: the same answer as over h2c; no certificate, another CA\'s, or plaintext are refused', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const config = (extAuthz: Record<string, unknown>): Record<string, unknown> => ({
    server: { trustProxy: ['127.0.0.1/32'], extAuthz: { host: '127.0.0.1', port: 0, ...extAuthz } },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } } }]
  })
  const secure = await startGateway(config({ tls: { cert: server.cert, key: server.key, clientCa: kit.ca.cert, clientCertificate: 'require' } }))
  t.teardown(() => secure.close())
  const plain = await startGateway(config({}))
  t.teardown(() => plain.close())

  const token = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice', client_id: 'todo-web', scope: 'read:todos' })
  const allowed = envoyCheckRequest({ path: '/todos/1', headers: { authorization: `Bearer ${token}` } })
  const denied = envoyCheckRequest({ path: '/todos/1' })

  const overTls = extAuthzClient(`localhost:${portOf(secure)}`, mtls(envoy))
  t.teardown(() => overTls.close())
  const overH2c = extAuthzClient(`127.0.0.1:${portOf(plain)}`)
  t.teardown(() => overH2c.close())

  const tlsAllow = await overTls.check(allowed)
  t.equal(tlsAllow.status?.code, 0, 'allowed over mTLS')
  t.same(tlsAllow, await overH2c.check(allowed), 'the allow is the one h2c gets')
  const tlsDeny = await overTls.check(denied)
  t.equal(tlsDeny.status?.code, 16, 'UNAUTHENTICATED without a token')
  t.same(tlsDeny, await overH2c.check(denied), 'the denial is the one h2c gets')
  t.match(secure.decisions().at(-1), { endpoint: 'ext_authz', decision: 'deny', status: 401 })
  const health = healthClient(`localhost:${portOf(secure)}`, mtls(envoy))
  t.teardown(() => health.close())
  t.same(await health.check(), { status: 'SERVING' }, 'the health service answers over mTLS too')

  const decided = secure.decisions().length
  const refusedBy = async (name: string, credentials: grpc.ChannelCredentials): Promise<void> => {
    const client = extAuthzClient(`localhost:${portOf(secure)}`, credentials)
    try {
      await client.check(allowed)
      t.fail(`${name}: answered`)
    } catch (err) {
      t.equal((err as grpc.ServiceError).code, grpc.status.UNAVAILABLE, `${name}: refused at the connection`)
    } finally {
      client.close()
    }
  }
  await refusedBy('a plaintext client', grpc.credentials.createInsecure())
  await refusedBy('a client without a certificate', mtls(null))
  await refusedBy('a certificate from another CA', mtls(impostor))
  t.equal(secure.decisions().length, decided, 'no Check of theirs was decided')
  t.equal(echo.received.length, 0, 'the upstream saw nothing: ext_authz forwards nothing')
  t.notOk(secure.rawLog().includes(token), 'the token is never logged')
  t.match(secure.logs.find((l) => l.msg === 'TLS certificate loaded' && l.listener === 'extAuthz'),
    { certificate: { serial: server.serial } }, 'start-up logs the listener\'s certificate')
})

t.test('clientCertificate request lets a client without a certificate in; minVersion TLSv1.3 refuses a TLS 1.2 client', async (t) => {
  const { jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { extAuthz: { host: '127.0.0.1', port: 0, tls: { cert: server.cert, key: server.key, clientCa: kit.ca.cert, clientCertificate: 'request', minVersion: 'TLSv1.3' } } },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' }]
  })
  t.teardown(() => gw.close())
  const anonymous = extAuthzClient(`localhost:${portOf(gw)}`, mtls(null))
  t.teardown(() => anonymous.close())
  t.equal((await anonymous.check(envoyCheckRequest({ path: '/todos' }))).status?.code, 16, 'answered (a denial: no token)')
  await t.rejects(new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: portOf(gw), ca: kit.ca.pem, ALPNProtocols: ['h2'], maxVersion: 'TLSv1.2' }, () => { socket.destroy(); resolve(null) })
    socket.once('error', reject)
  }), 'minVersion TLSv1.3: a TLS 1.2 client is refused')
  t.equal(echo.received.length, 0, 'the upstream saw nothing')
})

t.test('rotation by a symlink swap: a new connection sees the new certificate, an open one goes on, a bad set is refused', async (t) => {
  const first = kit.issue('first')
  const second = kit.issue('second')
  const third = kit.issue('third')
  const volume = secretVolume(join(kit.dir, 'ext-authz-secret'), first, first)

  const { jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { extAuthz: { host: '127.0.0.1', port: 0, tls: { cert: volume.cert, key: volume.key } } },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { todo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' }]
  })
  t.teardown(() => gw.close())
  const port = portOf(gw)
  t.equal(await presented(port, null), first.serial)
  const open = extAuthzClient(`localhost:${port}`, mtls(null))
  t.teardown(() => open.close())
  t.equal((await open.check(envoyCheckRequest({ path: '/todos' }))).status?.code, 16)

  const logged = async (msg: string, after: number): Promise<Record<string, unknown> | undefined> => {
    for (let i = 0; i < 100; i++) {
      const line = gw.logs.slice(after).find((l) => l.msg === msg && l.listener === 'extAuthz')
      if (line !== undefined) return line
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    return undefined
  }
  let mark = gw.logs.length
  volume.publish(second, second)
  t.match(await logged('TLS certificate loaded', mark), { trigger: 'file', certificate: { serial: second.serial } }, 'the rotation was noticed')
  t.equal(await presented(port, null), second.serial, 'a new connection gets the new certificate')
  t.equal((await open.check(envoyCheckRequest({ path: '/todos' }))).status?.code, 16, 'the connection open before still answers')
  const fresh = extAuthzClient(`localhost:${port}`, mtls(null))
  t.teardown(() => fresh.close())
  t.equal((await fresh.check(envoyCheckRequest({ path: '/todos' }))).status?.code, 16, 'a new gRPC client verifies the new certificate')

  mark = gw.logs.length
  volume.publish(third, first)
  t.match(await logged('TLS files refused; the certificate in force stays', mark), { problems: [{ path: 'server.extAuthz.tls.key' }] }, 'a key of another certificate is refused')
  t.equal(await presented(port, null), second.serial, 'the certificate in force stays')

  mark = gw.logs.length
  writeFileSync(join(volume.current(), 'tls.key'), readKey(third))
  await gw.gateway.reload(gw.gateway.current().config)
  t.match(await logged('TLS certificate loaded', mark), { certificate: { serial: third.serial } }, 'a config reload re-reads the files too')
  t.equal(await presented(port, null), third.serial)
  t.equal(echo.received.length, 0, 'the upstream saw nothing')
})

t.test('validate names the ext_authz listener\'s TLS problems by their config path', async (t) => {
  const problems = (tlsBlock: Record<string, unknown>): string[] => {
    try {
      compileTestConfig({
        server: { extAuthz: { port: 0, tls: tlsBlock } },
        issuers: [{ id: 'main', issuer: 'https://issuer.example', jwksUri: 'https://issuer.example/jwks', algorithms: ['ES256'], audiences: [API] }],
        upstreams: { todo: { url: 'http://127.0.0.1:1' } },
        routes: [{ id: 'todos', match: { path: '/todos' }, upstream: 'todo' }]
      })
      return []
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      return err.problems.map((p) => `${p.path}: ${p.message}`)
    }
  }
  t.same(problems({ cert: server.cert, key: server.key }), [], 'a good pair passes')
  t.match(problems({ cert: join(kit.dir, 'missing.crt'), key: server.key }), [/^server\.extAuthz\.tls\.cert: cannot be read \(ENOENT\)/])
  t.match(problems({ cert: server.cert, key: envoy.key }), [/^server\.extAuthz\.tls\.key: does not match the certificate/])
  t.match(problems({ cert: server.cert, key: server.key, clientCertificate: 'require' }), [/^server\.extAuthz\.tls\.clientCa: is required when clientCertificate is require/])
  t.match(problems({ cert: server.cert, key: server.key, minVersion: 'TLSv1.1' }), [/^server\.extAuthz\.tls\.minVersion/])
  t.notOk(problems({ cert: server.cert, key: server.key + '-nope' }).join('\n').includes('BEGIN'), 'no PEM text in a problem')
})
