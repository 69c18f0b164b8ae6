/**
 * Reading an Envoy CheckRequest (docs/istio.md) without a network: the request named by each encoding of
 * the headers, the host from `host`, `:authority` or the Host header, what is believed only from a
 * trusted caller, and the gRPC peer's address in each spelling grpc-js gives it.
 */
import t from 'tap'
import { checkedRequest, type CheckRequestMessage } from '../../src/authz/check-request.js'
import { peerAddress } from '../../src/grpc/ext-authz-server.js'
import { GatewayError } from '../../src/shared/errors.js'

const http = (fields: Record<string, unknown>): CheckRequestMessage => ({
  attributes: { source: { address: { socket_address: { address: '203.0.113.7' } } }, request: { http: { method: 'GET', path: '/todos?x=1', ...fields } } }
})

t.test('the headers, as a map or as header_map, pseudo-headers left out', async (t) => {
  const fromMap = checkedRequest(http({ host: 'api.example.com', headers: { ':path': '/admin', ':method': 'DELETE', authorization: 'Bearer a', origin: 'https://app' } }), '10.0.0.1', true)
  t.same(fromMap.input, { method: 'GET', target: '/todos?x=1', authorization: ['Bearer a'], clientIp: '203.0.113.7', host: 'api.example.com' })
  t.same(fromMap.rawHeaders, ['authorization', 'Bearer a', 'origin', 'https://app'])
  t.equal(fromMap.cors.origin, 'https://app')
  const raw = checkedRequest(http({
    host: 'api.example.com',
    header_map: { headers: [{ key: ':path', raw_value: Buffer.from('/admin') }, { key: 'authorization', raw_value: Buffer.from('Bearer a') }, { key: 'authorization', raw_value: Buffer.from('Bearer b') }] }
  }), '10.0.0.1', true)
  t.same(raw.input.authorization, ['Bearer a', 'Bearer b'], 'repeated headers stay apart, and are refused as in proxy mode later')
})

t.test('the host: host, else :authority, else the Host header', async (t) => {
  t.equal(checkedRequest(http({ host: 'a.example', headers: { ':authority': 'b.example' } }), '10.0.0.1', true).input.host, 'a.example')
  t.equal(checkedRequest(http({ headers: { ':authority': 'b.example', host: 'c.example' } }), '10.0.0.1', true).input.host, 'b.example')
  t.equal(checkedRequest(http({ header_map: { headers: [{ key: ':authority', raw_value: Buffer.from('d.example') }] } }), '10.0.0.1', true).input.host, 'd.example')
  t.equal(checkedRequest(http({ headers: { host: 'c.example' } }), '10.0.0.1', true).input.host, 'c.example')
  t.equal(checkedRequest(http({}), '10.0.0.1', true).input.host, undefined, 'none: only routes without match.host')
})

t.test('the client address and the DPoP origin only from a trusted caller', async (t) => {
  const dpop = http({ host: 'api.example.com', scheme: 'https', headers: { authorization: 'DPoP x', dpop: 'proof' } })
  const trusted = checkedRequest(dpop, '10.0.0.1', true)
  t.equal(trusted.input.clientIp, '203.0.113.7')
  t.same(trusted.input.dpop, { proofs: ['proof'], origin: 'https://api.example.com' })
  const untrusted = checkedRequest(dpop, '::ffff:10.0.0.1', false)
  t.equal(untrusted.input.clientIp, '10.0.0.1', 'the peer itself, unmapped')
  t.same(untrusted.input.dpop, { proofs: ['proof'], origin: null }, 'no origin: the proof is refused, never checked against a guess')
  const notAnAddress = checkedRequest({ attributes: { source: { address: { socket_address: { address: 'unix:/tmp/x' } } }, request: { http: { method: 'GET', path: '/' } } } }, '10.0.0.1', true)
  t.equal(notAnAddress.input.clientIp, '10.0.0.1', 'a source that is not an IP: the peer')
})

t.test('what cannot be read is a 400, never a guess', async (t) => {
  const refused = (message: CheckRequestMessage): string => {
    try {
      checkedRequest(message, '10.0.0.1', true)
      return 'read'
    } catch (err) {
      return err instanceof GatewayError ? `${err.status} ${err.reason}` : 'unexpected'
    }
  }
  t.equal(refused({}), '400 request_malformed')
  t.equal(refused({ attributes: { request: { http: null } } }), '400 request_malformed')
  t.equal(refused(http({ method: '' })), '400 request_malformed')
  t.equal(refused(http({ path: '*' })), '400 request_malformed', 'asterisk-form')
  t.equal(refused(http({ path: 'example.com:443' })), '400 request_malformed', 'authority-form (CONNECT)')
})

t.test('the gRPC peer address in each spelling', async (t) => {
  t.equal(peerAddress('127.0.0.1:5000'), '127.0.0.1')
  t.equal(peerAddress('ipv4:10.1.2.3:5000'), '10.1.2.3')
  t.equal(peerAddress('[::1]:5000'), '::1')
  t.equal(peerAddress('ipv6:[::ffff:10.1.2.3]:5000'), '10.1.2.3', 'IPv4-mapped: as IPv4, as trustProxy compares it')
  t.equal(peerAddress('[2001:db8::7]:443'), '2001:db8::7')
})
