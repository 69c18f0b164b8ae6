/**
 * TLS on the proxy and admin listeners (docs/tls.md), end to end with real clients (node:https, curl):
 * what the client saw, and what the upstream saw or that it saw nothing. Certificates come from
 * `openssl` in a temp dir (`helpers/certificates.ts`).
 */
import https from 'node:https'
import { readFileSync } from 'node:fs'
import type { TLSSocket } from 'node:tls'
import t, { type Test } from 'tap'
import { certificateThumbprint } from '../../src/http/client-certificate.js'
import { certificateKit } from '../helpers/certificates.js'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { mintToken } from '../helpers/jwks-server.js'
import { curl, httpsRequest } from '../helpers/tls-clients.js'

const AUD = 'https://todo.api'
const kit = certificateKit()
t.teardown(() => { kit.remove() })
const server = kit.issue('server')
const client = kit.issue('client', { client: true })
const stranger = kit.authority('stranger')
const foreignClient = kit.issue('foreign-client', { client: true, by: stranger })
const caPem = kit.ca.pem
const pem = (file: string): string => readFileSync(file, 'utf8')

async function cast (t: Test, proxyTls: Record<string, unknown>, adminTls?: Record<string, unknown>) {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { proxy: { tls: proxyTls }, ...(adminTls === undefined ? {} : { admin: { tls: adminTls } }) },
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { echo: { url: echo.url } },
    routes: [{ id: 'api', match: { path: '/api', prefix: true }, upstream: 'echo', policy: { scopes: { require: ['read'] } } }]
  })
  t.teardown(() => gw.close())
  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', scope: 'read' })
  return { gw, echo, token }
}

t.test('TLS on the proxy listener: allow and deny end to end', async (t) => {
  const { gw, echo, token } = await cast(t, { cert: server.cert, key: server.key })
  t.match(gw.proxyUrl, /^https:\/\/127\.0\.0\.1:\d+$/)

  const allowed = await httpsRequest(`${gw.proxyUrl}/api/items`, {
    ca: caPem,
    headers: { authorization: `Bearer ${token}`, 'x-auth-subject': 'mallory', 'x-forwarded-proto': 'http' }
  })
  t.equal(allowed.status, 200)
  t.equal(allowed.peer.serialNumber, server.serial, 'the configured certificate is served')
  t.equal(echo.received.length, 1)
  const seen = echo.received[0]
  t.equal(seen?.headers['x-forwarded-proto'], 'https', 'the client spoke TLS to scopegate')
  t.equal(seen?.headers['x-forwarded-port'], new URL(gw.proxyUrl).port)
  t.equal(seen?.headers['x-auth-subject'], 'alice', "the client's copy of an identity header is replaced")
  t.equal(seen?.rawHeaders.filter((name) => name.toLowerCase() === 'x-auth-subject').length, 1)

  const denied = await httpsRequest(`${gw.proxyUrl}/api/items`, { ca: caPem })
  t.equal(denied.status, 401)
  t.equal(denied.json?.error, 'unauthorized')
  t.equal(echo.received.length, 1, 'the upstream saw nothing of the denial')

  const viaCurl = await curl(`${gw.proxyUrl}/api/curl`, ['--cacert', kit.ca.cert, '-H', `authorization: Bearer ${token}`])
  t.equal(viaCurl.status, 200)
  t.equal(echo.received.at(-1)?.url, '/api/curl')
  const plaintext = await curl(gw.proxyUrl.replace('https:', 'http:') + '/api/plain', ['-H', `authorization: Bearer ${token}`])
  t.not(plaintext.status, 200, 'plaintext HTTP on a TLS port gets no answer from the gateway')
  const untrusted = await curl(`${gw.proxyUrl}/api/untrusted`, ['-H', `authorization: Bearer ${token}`])
  t.equal(untrusted.code, 60, 'a client that does not trust the CA refuses the certificate')
  t.equal(echo.received.length, 2, 'neither reached the upstream')
})

t.test('mTLS require: a client without a certificate of the CA never reaches the decision', async (t) => {
  const { gw, echo, token } = await cast(t, { cert: server.cert, key: server.key, clientCa: kit.ca.cert, clientCertificate: 'require' })
  const headers = { authorization: `Bearer ${token}` }

  await t.rejects(httpsRequest(`${gw.proxyUrl}/api/none`, { ca: caPem, headers }), 'no certificate: the handshake fails')
  await t.rejects(httpsRequest(`${gw.proxyUrl}/api/foreign`, { ca: caPem, headers, cert: pem(foreignClient.cert), key: pem(foreignClient.key) }),
    'a certificate of another CA: the handshake fails')
  const noCert = await curl(`${gw.proxyUrl}/api/curl-none`, ['--cacert', kit.ca.cert, '-H', `authorization: Bearer ${token}`])
  t.not(noCert.code, 0, 'curl without --cert gets no response')
  t.equal(echo.received.length, 0, 'the upstream saw nothing')
  t.equal(gw.decisions().length, 0, 'nothing was decided')

  const ok = await httpsRequest(`${gw.proxyUrl}/api/mine`, { ca: caPem, headers, cert: pem(client.cert), key: pem(client.key) })
  t.equal(ok.status, 200)
  const viaCurl = await curl(`${gw.proxyUrl}/api/curl`, ['--cacert', kit.ca.cert, '--cert', client.cert, '--key', client.key, '-H', `authorization: Bearer ${token}`])
  t.equal(viaCurl.status, 200)
  t.same(echo.received.map((r) => r.url), ['/api/mine', '/api/curl'])
  const deniedWithCert = await httpsRequest(`${gw.proxyUrl}/api/mine`, { ca: caPem, cert: pem(client.cert), key: pem(client.key) })
  t.equal(deniedWithCert.status, 401, 'a certificate is not a token: the policy still applies')
  t.equal(echo.received.length, 2)
})

t.test('mTLS request: the request goes on with or without a certificate', async (t) => {
  const { gw, echo, token } = await cast(t, { cert: server.cert, key: server.key, clientCa: kit.ca.cert, clientCertificate: 'request' })
  const headers = { authorization: `Bearer ${token}` }
  t.equal((await httpsRequest(`${gw.proxyUrl}/api/none`, { ca: caPem, headers })).status, 200)
  t.equal((await httpsRequest(`${gw.proxyUrl}/api/foreign`, { ca: caPem, headers, cert: pem(foreignClient.cert), key: pem(foreignClient.key) })).status, 200)
  t.equal((await httpsRequest(`${gw.proxyUrl}/api/mine`, { ca: caPem, headers, cert: pem(client.cert), key: pem(client.key) })).status, 200)
  t.same(echo.received.map((r) => r.url), ['/api/none', '/api/foreign', '/api/mine'])
})

t.test('the admin listener over TLS: probes, metrics', async (t) => {
  const { gw, echo } = await cast(t, { cert: server.cert, key: server.key }, { cert: server.cert, key: server.key, clientCa: kit.ca.cert, clientCertificate: 'require' })
  t.match(gw.adminUrl, /^https:/)
  const mine = { ca: caPem, cert: pem(client.cert), key: pem(client.key) }
  const health = await httpsRequest(`${gw.adminUrl}/healthz`, mine)
  t.equal(health.status, 200)
  t.same(health.json, { status: 'ok' })
  const metrics = await httpsRequest(`${gw.adminUrl}/metrics`, mine)
  t.equal(metrics.status, 200)
  t.match(metrics.body, /# TYPE/)
  await t.rejects(httpsRequest(`${gw.adminUrl}/metrics`, { ca: caPem }), 'no client certificate, no metrics')
  t.equal(echo.received.length, 0)
})

t.test("the client certificate's RFC 8705 thumbprint, once per connection", async (t) => {
  const seen: Array<string | undefined> = []
  const sockets = new Set<TLSSocket>()
  const tlsServer = https.createServer({ cert: pem(server.cert), key: pem(server.key), ca: caPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    sockets.add(req.socket as TLSSocket)
    seen.push(certificateThumbprint(req))
    res.end('ok')
  })
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { tlsServer.closeAllConnections(); tlsServer.close(() => resolve()) }))
  const url = `https://127.0.0.1:${(tlsServer.address() as { port: number }).port}/`
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: caPem, cert: pem(client.cert), key: pem(client.key) })
  t.teardown(() => agent.destroy())
  await httpsRequest(url, { agent })
  await httpsRequest(url, { agent })
  t.equal(sockets.size, 1, 'one connection')
  t.same(seen, [client.thumbprint, client.thumbprint], 'base64url SHA-256 of the DER, both times')
  await httpsRequest(url, { ca: caPem, cert: pem(foreignClient.cert), key: pem(foreignClient.key) })
  await httpsRequest(url, { ca: caPem })
  t.same(seen.slice(2), [undefined, undefined], 'an unverified certificate, or none, gives no thumbprint')
})
