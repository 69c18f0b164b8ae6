/**
 * Certificate-bound tokens (RFC 8705, docs/tls.md) without a network: thumbprints of the texts that pass a
 * certificate on (URL-encoded PEM, Envoy's XFCC) agree with openssl's, unreadable ones are refused, the
 * forward-auth header is believed only from a trusted peer, and the binding check answers each case.
 */
import t from 'tap'
import { checkCertificateBinding } from '../../src/decision/check-certificate-binding.js'
import { forwardedCertificate } from '../../src/http/forward-auth-certificate.js'
import { pemThumbprint, xfccThumbprint } from '../../src/request/client-certificate.js'
import { GatewayError } from '../../src/shared/errors.js'
import { confirmation } from '../../src/token/confirmation.js'
import { cacheKey, verifiedToken } from '../../src/token/verified-token.js'
import { identityClaims } from '../../src/token/claims.js'
import { makeCertificates } from '../helpers/openssl-thumbprints.js'
import { compileTestConfig } from '../helpers/gateway.js'

const [a, b] = makeCertificates('client-a', 'client-b')
if (a === undefined || b === undefined) throw new Error('no certificates')

/** The error's reason, or 'pass'. */
function outcome (run: () => unknown): string {
  try {
    run()
    return 'pass'
  } catch (err) {
    return err instanceof GatewayError ? `${err.status} ${err.reason}` : `unexpected ${String(err)}`
  }
}

t.test('a PEM, plain or URL-encoded as Envoy and nginx send it, gives openssl\'s thumbprint', async (t) => {
  t.equal(pemThumbprint(a.pem), a.thumbprint)
  t.equal(pemThumbprint(encodeURIComponent(a.pem)), a.thumbprint, 'URL-encoded')
  t.equal(pemThumbprint(encodeURIComponent(a.pem + b.pem)), a.thumbprint, 'a chain: the leaf, first')
  t.not(a.thumbprint, b.thumbprint)
})

t.test('an unreadable certificate is refused, never read as none', async (t) => {
  const body = a.pem.split('\n').slice(1, -2).join('\n')
  const cases: Array<[string, string]> = [
    ['no PEM block', 'hello'],
    ['bad URL encoding', '%E0%A4%A'],
    ['a block that is not a certificate', `-----BEGIN CERTIFICATE-----\n${Buffer.from('not a certificate').toString('base64')}\n-----END CERTIFICATE-----`],
    ['a truncated certificate', `-----BEGIN CERTIFICATE-----\n${body.slice(0, 80)}\n-----END CERTIFICATE-----`],
    ['far too long', 'x'.repeat(40_000)]
  ]
  for (const [name, text] of cases) t.equal(outcome(() => pemThumbprint(text)), '400 certificate_malformed', name)
})

t.test('x-forwarded-client-cert: the last element\'s Hash, else its Cert', async (t) => {
  t.equal(xfccThumbprint(`By=spiffe://cluster.local/ns/a/sa/gw;Hash=${a.hex};Subject="CN=client-a";URI=`), a.thumbprint, 'Hash')
  t.equal(xfccThumbprint(`By=spiffe://x;Cert="${encodeURIComponent(a.pem)}";Subject="CN=a, O=x"`), a.thumbprint, 'Cert, quoted')
  t.equal(xfccThumbprint(`Hash=${b.hex};By=spiffe://outer,By=spiffe://inner;Hash=${a.hex}`), a.thumbprint, 'several hops: the nearest, last')
  t.equal(xfccThumbprint('By=spiffe://cluster.local/ns/a/sa/gw'), undefined, 'no client certificate on that hop')
  t.equal(outcome(() => xfccThumbprint('Hash=abc')), '400 certificate_malformed', 'a Hash that is not a SHA-256')
  t.equal(outcome(() => xfccThumbprint(',')), '400 certificate_malformed', 'no element')
})

t.test('forward auth\'s header: only from a trusted peer, once', async (t) => {
  const pem = { name: 'x-ssl-client-cert', format: 'pem' as const }
  const header = ['X-SSL-Client-Cert', encodeURIComponent(a.pem)]
  t.equal(forwardedCertificate(header, pem, true), a.thumbprint, 'trusted')
  t.equal(forwardedCertificate(header, pem, false), undefined, 'untrusted: ignored')
  t.equal(forwardedCertificate(header, null, true), undefined, 'no header configured')
  t.equal(forwardedCertificate(['x-ssl-client-cert', ''], pem, true), undefined, 'empty: nginx without a client certificate')
  t.equal(outcome(() => forwardedCertificate([...header, ...header], pem, true)), '400 certificate_malformed', 'sent twice')
  t.equal(forwardedCertificate(['x-forwarded-client-cert', `Hash=${b.hex}`], { name: 'x-forwarded-client-cert', format: 'xfcc' }, true), b.thumbprint, 'xfcc')
})

t.test('cnf is read for both bindings; other types bind to nothing', async (t) => {
  t.same(confirmation({ cnf: { 'x5t#S256': a.thumbprint } }), { jkt: null, x5t: a.thumbprint })
  t.same(confirmation({ cnf: { jkt: 'k', 'x5t#S256': 7 } }), { jkt: 'k', x5t: null })
  t.same(confirmation({ cnf: 'x' }), { jkt: null, x5t: null })
  t.same(confirmation({}), { jkt: null, x5t: null })
})

t.test('the binding check', async (t) => {
  const config = compileTestConfig({
    issuers: [
      { id: 'idp', issuer: 'https://idp.test/', jwksUri: 'https://idp.test/jwks', algorithms: ['ES256'], audiences: ['api'] },
      { id: 'strict', issuer: 'https://strict.test/', jwksUri: 'https://strict.test/jwks', algorithms: ['ES256'], audiences: ['api'], requireCertificateBinding: true }
    ],
    upstreams: { todo: { url: 'http://todo:3000' } },
    routes: [
      { id: 'open', match: { path: '/open' }, upstream: 'todo' },
      { id: 'bound', match: { path: '/bound' }, upstream: 'todo', requireCertificateBinding: true }
    ]
  })
  const route = (id: string): NonNullable<ReturnType<typeof config.routes.find>> => {
    const found = config.routes.find((r) => r.id === id)
    if (found === undefined) throw new Error(id)
    return found
  }
  const token = (issuerId: string, x5t: string | null): ReturnType<typeof verifiedToken> => {
    const issuer = config.issuersById.get(issuerId)
    if (issuer === undefined) throw new Error(issuerId)
    return verifiedToken(identityClaims({ sub: 's' }, issuer.claims), issuer, {}, 2_000_000_000, null, 0, cacheKey(issuerId), null, x5t)
  }
  const reason = (found: GatewayError | null): string => found === null ? 'pass' : `${found.status} ${found.code} ${found.reason}`
  const cases: Array<[string, string, string, string | null, string | undefined, string]> = [
    ['bound token, its certificate', 'open', 'idp', a.thumbprint, a.thumbprint, 'pass'],
    ['bound token, another certificate', 'open', 'idp', a.thumbprint, b.thumbprint, '401 invalid_token certificate_binding_mismatch'],
    ['bound token, no certificate', 'open', 'idp', a.thumbprint, undefined, '401 invalid_token certificate_missing'],
    ['unbound token, no requirement, a certificate', 'open', 'idp', null, a.thumbprint, 'pass'],
    ['unbound token, no requirement, none', 'open', 'idp', null, undefined, 'pass'],
    ['unbound token, the route requires binding', 'bound', 'idp', null, a.thumbprint, '401 invalid_token certificate_binding_required'],
    ['unbound token, the issuer requires binding', 'open', 'strict', null, a.thumbprint, '401 invalid_token certificate_binding_required'],
    ['bound token where required, its certificate', 'bound', 'strict', b.thumbprint, b.thumbprint, 'pass']
  ]
  for (const [name, routeId, issuerId, x5t, presented, expected] of cases) {
    const found = checkCertificateBinding(route(routeId), token(issuerId, x5t), presented)
    t.equal(reason(found), expected, name)
    if (found !== null) {
      t.notOk(found.description.includes(a.thumbprint) || found.description.includes(b.thumbprint), `${name}: no thumbprint in the description`)
      t.notOk((found.detail ?? '').includes(a.thumbprint) || (found.detail ?? '').includes(b.thumbprint), `${name}: nor in the log detail`)
    }
  }
})
