/**
 * Certificate-bound tokens (RFC 8705 §3, docs/tls.md) end to end, with certificates made by openssl and
 * tokens carrying `cnf.x5t#S256` from the test issuer: through the ext_authz service (Envoy's
 * `source.certificate`), forward auth (a trusted ingress's header, as nginx or Envoy pass it; the same
 * header from an untrusted peer ignored), and proxy mode, where it is the one the client presented to the
 * mTLS listener. The upstream sees only what proxy mode forwards.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { startGateway, issuerAndEcho, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { makeCertificates } from '../helpers/openssl-thumbprints.js'
import { envoyCheckRequest, extAuthzClient, type CheckResponse } from '../helpers/ext-authz-client.js'
import { explain } from '../../src/decision/explain.js'
import { certificateKit } from '../helpers/certificates.js'
import { httpsRequest } from '../helpers/tls-clients.js'

const API = 'https://todo.api'

t.test('certificate-bound tokens', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const [certA, certB] = makeCertificates('client-a', 'client-b')
  if (certA === undefined || certB === undefined) throw new Error('no certificates')

  const config = (trustProxy: string[], header: Record<string, string>): Record<string, unknown> => ({
    server: { trustProxy, extAuthz: { host: '127.0.0.1', port: 0 }, clientCertificateHeader: header },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { todo: { url: echo.url } },
    routes: [
      { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' },
      { id: 'payments', match: { path: '/payments', prefix: true }, upstream: 'todo', requireCertificateBinding: true }
    ]
  })
  const nginxHeader = { name: 'X-SSL-Client-Cert', format: 'pem' }
  const gw = await startGateway(config(['127.0.0.1/32'], nginxHeader))
  t.teardown(() => gw.close())
  const untrusted = await startGateway(config(['10.0.0.0/8'], nginxHeader))
  t.teardown(() => untrusted.close())
  const envoyFront = await startGateway(config(['127.0.0.1/32'], { name: 'x-forwarded-client-cert', format: 'xfcc' }))
  t.teardown(() => envoyFront.close())

  const grpcOf = (g: TestGateway): ReturnType<typeof extAuthzClient> => {
    const client = extAuthzClient(`127.0.0.1:${g.gateway.extAuthz?.boundPort ?? 0}`)
    t.teardown(() => client.close())
    return client
  }
  const ext = grpcOf(gw)
  const token = (claims: Record<string, unknown> = {}): Promise<string> =>
    mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice', client_id: 'pay-cli', scope: 'pay', ...claims })
  const boundToA = await token({ cnf: { 'x5t#S256': certA.thumbprint } })
  const unbound = await token()

  const viaExtAuthz = async (authorization: string, path: string, certificate?: string): Promise<CheckResponse> =>
    await ext.check(envoyCheckRequest({ path, headers: { authorization: `Bearer ${authorization}` }, ...(certificate === undefined ? {} : { certificate }) }))
  const errorOf = (res: CheckResponse): string => res.status?.code === 0 ? 'allow' : `${String(res.denied_response?.status?.code)} ${JSON.parse(res.denied_response?.body ?? '{}').error as string}`

  t.test('through ext_authz: the certificate Envoy passes in source.certificate', async (t) => {
    const before = echo.received.length
    t.equal(errorOf(await viaExtAuthz(boundToA, '/todos', certA.pem)), 'allow', 'its certificate')
    // Verified once and cached with certificate A: the cache must not let it pass with another.
    const other = await viaExtAuthz(boundToA, '/todos', certB.pem)
    t.equal(errorOf(other), 'Unauthorized invalid_token', 'another certificate')
    t.same(JSON.parse(other.denied_response?.body ?? ''), { error: 'invalid_token', error_description: 'the token is not bound to the client certificate presented' })
    const header = other.denied_response?.headers?.find((h) => h.header.key === 'www-authenticate')?.header.value ?? ''
    t.match(header, /^Bearer realm="scopegate", error="invalid_token"/)
    t.notOk(header.includes(certA.thumbprint) || header.includes(certB.thumbprint), 'no thumbprint in the challenge')
    t.equal(errorOf(await viaExtAuthz(boundToA, '/todos')), 'Unauthorized invalid_token', 'no certificate')
    t.match(gw.decisions().at(-1), { reason: 'certificate_missing', status: 401, endpoint: 'ext_authz' })
    t.equal(errorOf(await viaExtAuthz(unbound, '/todos', certA.pem)), 'allow', 'an unbound token where binding is not required')
    t.equal(errorOf(await viaExtAuthz(unbound, '/payments', certA.pem)), 'Unauthorized invalid_token', 'an unbound token where it is required')
    t.match(gw.decisions().at(-1), { route: 'payments', reason: 'certificate_binding_required' })
    t.equal(errorOf(await viaExtAuthz(boundToA, '/payments', certA.pem)), 'allow', 'a bound token with its certificate where required')
    const fromUntrusted = await grpcOf(untrusted).check(envoyCheckRequest({ path: '/todos', headers: { authorization: `Bearer ${boundToA}` }, certificate: certA.pem }))
    t.equal(errorOf(fromUntrusted), 'Unauthorized invalid_token', 'source.certificate from an untrusted peer is not believed')
    t.equal(echo.received.length, before, 'the upstream saw nothing')
    const log = gw.rawLog()
    t.notOk(log.includes(certA.thumbprint) || log.includes(certB.thumbprint), 'no thumbprint in the log')
  })

  t.test('through forward auth: the header a trusted ingress sets', async (t) => {
    const before = echo.received.length
    const call = async (g: TestGateway, authorization: string, path: string, headers: Record<string, string> = {}): Promise<string> => {
      const res = await send(g.adminUrl, `/decisions${path}`, { headers: { authorization: `Bearer ${authorization}`, ...headers } })
      return res.status === 200 ? 'allow' : `${res.status} ${String(res.json?.error)}`
    }
    const nginx = (pem: string): Record<string, string> => ({ 'x-ssl-client-cert': encodeURIComponent(pem) })
    t.equal(await call(gw, boundToA, '/todos', nginx(certA.pem)), 'allow', 'nginx $ssl_client_escaped_cert: its certificate')
    t.equal(await call(gw, boundToA, '/todos', nginx(certB.pem)), '401 invalid_token', 'another certificate')
    t.equal(await call(gw, boundToA, '/todos'), '401 invalid_token', 'none')
    t.equal(await call(gw, boundToA, '/todos', { 'x-ssl-client-cert': '' }), '401 invalid_token', 'empty, as nginx sends it without a client certificate')
    t.equal(await call(gw, unbound, '/payments', nginx(certA.pem)), '401 invalid_token', 'unbound where required')
    t.equal(await call(gw, boundToA, '/todos', { 'x-ssl-client-cert': 'garbage' }), '403 invalid_request', 'unreadable: refused, not read as none')
    t.equal(await call(untrusted, boundToA, '/todos', nginx(certA.pem)), '401 invalid_token', 'from an untrusted peer the header is ignored')
    t.match(untrusted.decisions().at(-1), { reason: 'certificate_missing' })
    t.equal(await call(envoyFront, boundToA, '/todos', { 'x-forwarded-client-cert': `By=spiffe://cluster.local/ns/a/sa/gw;Hash=${certA.hex}` }), 'allow', 'Envoy XFCC Hash=')
    t.equal(await call(envoyFront, boundToA, '/todos', { 'x-forwarded-client-cert': `Hash=${certB.hex}` }), '401 invalid_token', 'XFCC of another certificate')
    t.equal(echo.received.length, before, 'forward auth forwards nothing')
  })

  t.test('explain shows the certificate step', async (t) => {
    const claims = { iss: jwks.issuer, aud: API, sub: 'alice', exp: 2_000_000_000, cnf: { 'x5t#S256': certA.thumbprint } }
    const pass = await explain(gw.gateway.current().config, { method: 'GET', path: '/todos', ip: '10.0.0.1', claims, certificateThumbprint: certA.thumbprint })
    t.ok(pass.allowed)
    t.ok(pass.lines.some((l) => /^certificate pass \(token bound to a certificate, certificate presented\)$/.test(l)), pass.lines.join('\n'))
    const fail = await explain(gw.gateway.current().config, { method: 'GET', path: '/todos', ip: '10.0.0.1', claims })
    t.notOk(fail.allowed)
    t.ok(fail.lines.some((l) => l.startsWith('certificate token bound to a certificate, no certificate: DENY 401 invalid_token (certificate_missing)')), fail.lines.join('\n'))
  })
})

t.test('proxy mode: the certificate the client presented to the mTLS listener', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const kit = certificateKit()
  t.teardown(() => { kit.remove() })
  const server = kit.issue('server')
  const alice = kit.issue('alice', { client: true })
  const bob = kit.issue('bob', { client: true })
  const gw = await startGateway({
    server: { proxy: { tls: { cert: server.cert, key: server.key, clientCa: kit.ca.cert, clientCertificate: 'request' } } },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { todo: { url: echo.url } },
    routes: [
      { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo' },
      { id: 'payments', match: { path: '/payments', prefix: true }, upstream: 'todo', requireCertificateBinding: true }
    ]
  })
  t.teardown(() => gw.close())
  const bound = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice', cnf: { 'x5t#S256': alice.thumbprint } })
  const unbound = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice' })
  const call = async (path: string, token: string, client?: { cert: string, key: string }): Promise<string> => {
    const res = await httpsRequest(`${gw.proxyUrl}${path}`, {
      ca: kit.ca.pem, headers: { authorization: `Bearer ${token}` }, ...(client === undefined ? {} : { cert: readFileSync(client.cert, 'utf8'), key: readFileSync(client.key, 'utf8') })
    })
    return res.status === 200 ? 'allow' : `${res.status} ${String(res.json?.error)}`
  }
  const before = echo.received.length
  t.equal(await call('/todos', bound, alice), 'allow', 'the bound certificate')
  t.equal(echo.received.length, before + 1, 'forwarded')
  t.equal(echo.received.at(-1)?.headers['x-auth-subject'], 'alice')
  t.equal(await call('/todos', bound, bob), '401 invalid_token', 'another certificate of the same CA')
  t.equal(await call('/todos', bound), '401 invalid_token', 'no certificate')
  t.equal(await call('/payments', unbound, alice), '401 invalid_token', 'unbound where binding is required')
  t.equal(echo.received.length, before + 1, 'none of the refusals reached the upstream')
  t.equal(await call('/todos', unbound), 'allow', 'an unbound token without a certificate where binding is not required')
  t.match(gw.decisions().filter((d) => d.status === 401).map((d) => d.reason), ['certificate_binding_mismatch', 'certificate_missing', 'certificate_binding_required'])
})
