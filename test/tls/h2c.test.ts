/**
 * h2c by prior knowledge beside HTTP/1.1 on one plaintext proxy port (`server.proxy.http2: true`,
 * docs/tls.md): the connection preface decides, and both reach the same decision and the same upstream.
 */
import http from 'node:http'
import t from 'tap'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { mintToken } from '../helpers/jwks-server.js'
import { send } from '../helpers/http.js'
import { curl, h2Request, h2Session } from '../helpers/tls-clients.js'

const AUD = 'https://todo.api'

t.test('h2c and HTTP/1.1 on one port', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { proxy: { http2: true } },
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { echo: { url: echo.url } },
    routes: [{ id: 'api', match: { path: '/api', prefix: true }, upstream: 'echo', policy: { scopes: { require: ['read'] } } }]
  })
  t.teardown(() => gw.close())
  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', scope: 'read' })

  const session = await h2Session(gw.proxyUrl)
  t.teardown(() => session.close())
  const allowed = await h2Request(session, { ':path': '/api/items?x=1', authorization: `Bearer ${token}` })
  t.equal(allowed.status, 200)
  t.equal(echo.received.length, 1)
  t.equal(echo.received[0]?.url, '/api/items?x=1')
  t.equal(echo.received[0]?.headers['x-auth-subject'], 'alice')
  t.equal(echo.received[0]?.headers['x-forwarded-proto'], 'http')
  t.notOk(echo.received[0]?.rawHeaders.some((name) => name.startsWith(':')), 'no pseudo-header upstream')

  const denied = await h2Request(session, { ':path': '/api/items' })
  t.equal(denied.status, 401)
  t.equal(denied.json?.error, 'unauthorized')
  t.equal(echo.received.length, 1, 'the upstream saw nothing of the denial')

  const h1 = await send(gw.proxyUrl, '/api/items', { headers: { authorization: `Bearer ${token}` } })
  t.equal(h1.status, 200)
  t.equal(echo.received.length, 2)

  const viaCurl = await curl(`${gw.proxyUrl}/api/curl`, ['--http2-prior-knowledge', '-H', `authorization: Bearer ${token}`])
  t.equal(viaCurl.status, 200)
  t.equal(viaCurl.httpVersion, '2')
  const curl1 = await curl(`${gw.proxyUrl}/api/curl1`, ['--http1.1', '-H', `authorization: Bearer ${token}`])
  t.equal(curl1.status, 200)
  t.equal(curl1.httpVersion, '1.1')
  t.same(echo.received.map((r) => r.url), ['/api/items?x=1', '/api/items', '/api/curl', '/api/curl1'])
})

t.test('shutdown closes idle h2 sessions and HTTP/1.1 keep-alive connections on the shared port', async (t) => {
  const { echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { proxy: { http2: true }, shutdownTimeout: '60s' },
    upstreams: { echo: { url: echo.url } },
    routes: [{ id: 'open', match: { path: '/open', prefix: true }, upstream: 'echo', auth: 'none' }]
  })
  const session = await h2Session(gw.proxyUrl)
  t.equal((await h2Request(session, { ':path': '/open/h2' })).status, 200)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const url = new URL(gw.proxyUrl)
  const { socketClosed } = await new Promise<{ socketClosed: Promise<void> }>((resolve, reject) => {
    const req = http.get({ host: url.hostname, port: url.port, path: '/open/h1', agent }, (res) => {
      const socket = res.socket
      res.resume()
      res.on('end', () => { resolve({ socketClosed: new Promise<void>((resolve) => socket.once('close', () => resolve())) }) })
    })
    req.on('error', reject)
  })
  const sessionClosed = new Promise<void>((resolve) => session.once('close', () => resolve()))
  // Both idle: the drain ends them rather than wait out the 60 s bound (tap's own timeout would fail the test).
  await gw.close()
  await sessionClosed
  await socketClosed
  t.same(echo.received.map((r) => r.url), ['/open/h2', '/open/h1'])
})
