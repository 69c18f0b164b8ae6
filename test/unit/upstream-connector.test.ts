/**
 * The pieces of `upstream/connector.ts` that decide how a connection to an upstream is opened: which
 * origin it is looked up by, the TLS options (verification on by default, SNI never an IP address), and
 * which failures are TLS ones (reason `upstream_tls`, docs/tls.md).
 */
import t from 'tap'
import { httpsOrigin, isTlsFailure, tlsConnectOptions, unbracket, upstreamTlsOptions } from '../../src/upstream/connector.js'
import { upstreamError } from '../../src/http/proxy-server.js'

t.test('origins as URL.origin writes them', async (t) => {
  t.equal(httpsOrigin('payments.internal', 443), 'https://payments.internal')
  t.equal(httpsOrigin('payments.internal', 8443), 'https://payments.internal:8443')
  t.equal(httpsOrigin('::1', 8443), 'https://[::1]:8443')
  t.equal(httpsOrigin('::1', 8443), new URL('https://[::1]:8443/x').origin)
  t.equal(unbracket('[::1]'), '::1')
  t.equal(unbracket('127.0.0.1'), '127.0.0.1')
})

t.test('TLS options: verified unless configured otherwise, SNI from the name', async (t) => {
  const defaults = tlsConnectOptions('payments.internal', 443, null, ['http/1.1'])
  t.equal(defaults.rejectUnauthorized, true, 'no tls block: verified against the system CAs')
  t.equal(defaults.servername, 'payments.internal')
  t.equal(defaults.ca, undefined)
  t.equal(tlsConnectOptions('10.0.0.7', 443, null, ['h2']).servername, undefined, 'no SNI for an IP address')
  t.equal(tlsConnectOptions('10.0.0.7', 443, { servername: 'ledger.internal', rejectUnauthorized: true }, ['h2']).servername, 'ledger.internal')
  t.equal(tlsConnectOptions('x', 443, { rejectUnauthorized: false }, ['h2']).rejectUnauthorized, false, 'only an explicit insecureSkipVerify')
  t.equal(upstreamTlsOptions(null).rejectUnauthorized, true, 'WebSocket handshakes too')
  t.equal(upstreamTlsOptions({ servername: 'a.test', rejectUnauthorized: true }).servername, 'a.test')
})

t.test('TLS failures are upstream_tls; other failures keep their reasons', async (t) => {
  const cases: Array<[string, string, number]> = [
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'upstream_tls', 502],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'upstream_tls', 502],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'upstream_tls', 502],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'upstream_tls', 502],
    ['CERT_HAS_EXPIRED', 'upstream_tls', 502],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'upstream_tls', 502],
    ['EPROTO', 'upstream_tls', 502],
    ['ECONNREFUSED', 'upstream_refused', 502],
    ['ECONNRESET', 'upstream_reset', 502],
    ['UND_ERR_SOCKET', 'upstream_reset', 502],
    ['UND_ERR_CONNECT_TIMEOUT', 'upstream_timeout', 504],
    ['UND_ERR_HEADERS_TIMEOUT', 'upstream_timeout', 504]
  ]
  for (const [code, reason, status] of cases) {
    t.equal(isTlsFailure(code), reason === 'upstream_tls', `${code}: isTlsFailure`)
    const err = upstreamError(Object.assign(new Error('wrapped'), { cause: { code } }), 'payments')
    t.match(err, { status, reason, description: status === 502 ? 'the upstream could not be reached' : 'the upstream did not answer in time' }, code)
    t.equal(err.detail, `payments: ${code}`, 'the log\'s detail names the code, nothing of the certificate')
  }
})
