import type { IncomingHttpHeaders } from 'node:http'
import t from 'tap'
import type { RawForwarding } from '../../src/config/types.js'
import { forwardingHeaders, type ForwardingInput } from '../../src/forward/forwarding-headers.js'
import { compileIpMatcher } from '../../src/net/ip-matcher.js'

// Our own load balancers: 10.0.0.0/8 and 2001:db8::/32.
const trusted = compileIpMatcher(['10.0.0.0/8', '2001:db8::/32'])

const DEFAULTS: RawForwarding = {
  xForwardedFor: 'append', xForwardedProto: true, xForwardedHost: true, xForwardedPort: true, forwarded: false, clientIpHeaders: []
}

function input (remoteAddress: string | undefined, headers: IncomingHttpHeaders, encrypted = false): ForwardingInput {
  return { remoteAddress, headers: { host: 'api.example.com', ...headers }, encrypted }
}

t.test('X-Forwarded-For: an untrusted peer\'s claimed chain is replaced by the peer', async (t) => {
  const cases: Array<[name: string, peer: string, xff: string | undefined, expected: string]> = [
    ['no header', '203.0.113.9', undefined, '203.0.113.9'],
    ['a forged internal address', '203.0.113.9', '10.0.0.1', '203.0.113.9'],
    ['a forged chain', '203.0.113.9', '1.1.1.1, 10.0.0.1', '203.0.113.9'],
    ['a trusted-range peer with no header', '10.0.0.2', undefined, '10.0.0.2'],
    ['IPv4-mapped peer as IPv4', '::ffff:203.0.113.9', '10.0.0.1', '203.0.113.9'],
    ['IPv6 peer', '2606:4700::1', '10.0.0.1', '2606:4700::1']
  ]
  for (const [name, peer, xff, expected] of cases) {
    const out = forwardingHeaders(input(peer, { 'x-forwarded-for': xff }), DEFAULTS, trusted)
    t.equal(out['x-forwarded-for'], expected, name)
  }
  t.equal(forwardingHeaders(input('10.0.0.2', { 'x-forwarded-for': '6.6.6.6' }), DEFAULTS, null)['x-forwarded-for'], '10.0.0.2',
    'no trustProxy: nobody\'s chain is kept')
})

t.test('X-Forwarded-For: a trusted peer\'s chain is kept from the client address on, the peer appended', async (t) => {
  const cases: Array<[name: string, peer: string, xff: string | string[], expected: string]> = [
    ['one hop', '10.0.0.2', '1.2.3.4', '1.2.3.4, 10.0.0.2'],
    ['what the client wrote left of its address is dropped', '10.0.0.2', '6.6.6.6, 1.2.3.4', '1.2.3.4, 10.0.0.2'],
    ['trusted hops are kept', '10.0.0.2', '6.6.6.6, 1.2.3.4, 10.0.0.3', '1.2.3.4, 10.0.0.3, 10.0.0.2'],
    ['several headers are one list', '10.0.0.2', ['6.6.6.6', '1.2.3.4, 10.0.0.3'], '1.2.3.4, 10.0.0.3, 10.0.0.2'],
    ['ports and brackets removed', '10.0.0.2', '[2606:4700::1111]:443, 10.0.0.3:80', '2606:4700::1111, 10.0.0.3, 10.0.0.2'],
    ['a garbage entry stops the walk at the last good hop', '10.0.0.2', '1.2.3.4, unknown, 10.0.0.3', '10.0.0.3, 10.0.0.2'],
    ['all trusted: the whole chain', '10.0.0.2', '10.0.0.5, 10.0.0.4', '10.0.0.5, 10.0.0.4, 10.0.0.2'],
    ['IPv6 peer and hops', '2001:db8::1', '2606:4700::1, 2001:db8::2', '2606:4700::1, 2001:db8::2, 2001:db8::1'],
    ['IPv4-mapped peer', '::ffff:10.0.0.2', '1.2.3.4', '1.2.3.4, 10.0.0.2']
  ]
  for (const [name, peer, xff, expected] of cases) {
    t.equal(forwardingHeaders(input(peer, { 'x-forwarded-for': xff }), DEFAULTS, trusted)['x-forwarded-for'], expected, name)
  }
})

t.test('xForwardedFor: replace sends the decided client alone, remove sends none', async (t) => {
  const request = input('10.0.0.2', { 'x-forwarded-for': '6.6.6.6, 1.2.3.4, 10.0.0.3' })
  t.equal(forwardingHeaders(request, { ...DEFAULTS, xForwardedFor: 'replace' }, trusted)['x-forwarded-for'], '1.2.3.4')
  t.equal(forwardingHeaders(input('203.0.113.9', { 'x-forwarded-for': '10.0.0.1' }), { ...DEFAULTS, xForwardedFor: 'replace' }, trusted)['x-forwarded-for'],
    '203.0.113.9')
  t.notOk('x-forwarded-for' in forwardingHeaders(request, { ...DEFAULTS, xForwardedFor: 'remove' }, trusted))
})

t.test('a socket without an address (already closed) gets no address headers', async (t) => {
  const out = forwardingHeaders(input(undefined, { 'x-forwarded-for': '1.2.3.4' }), { ...DEFAULTS, forwarded: true, clientIpHeaders: ['x-real-ip'] }, trusted)
  t.same(Object.keys(out).sort(), ['x-forwarded-host', 'x-forwarded-port', 'x-forwarded-proto'])
})

t.test('clientIpHeaders carry the decided client address', async (t) => {
  const options = { ...DEFAULTS, clientIpHeaders: ['x-real-ip', 'true-client-ip'] }
  const trustedOut = forwardingHeaders(input('10.0.0.2', { 'x-forwarded-for': '6.6.6.6, 1.2.3.4' }), options, trusted)
  t.equal(trustedOut['x-real-ip'], '1.2.3.4')
  t.equal(trustedOut['true-client-ip'], '1.2.3.4')
  const untrusted = forwardingHeaders(input('203.0.113.9', { 'x-forwarded-for': '10.0.0.1', 'x-real-ip': '10.0.0.1' }), options, trusted)
  t.equal(untrusted['x-real-ip'], '203.0.113.9', 'the client\'s own X-Real-IP is not read')
})

t.test('X-Forwarded-Proto, -Host and -Port come from the connection unless the peer is trusted', async (t) => {
  const claims = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', 'x-forwarded-port': '8443' }
  const cases: Array<[name: string, request: ForwardingInput, proto: string, host: string | undefined, port: string]> = [
    ['untrusted: its claims are ignored', input('203.0.113.9', claims), 'http', 'api.example.com', '80'],
    ['untrusted over TLS', input('203.0.113.9', claims, true), 'https', 'api.example.com', '443'],
    ['the Host port', input('203.0.113.9', { host: 'api.example.com:8080' }), 'http', 'api.example.com:8080', '8080'],
    ['an IPv6 Host with port', input('203.0.113.9', { host: '[2001:db8::5]:8080' }), 'http', '[2001:db8::5]:8080', '8080'],
    ['no Host (HTTP/1.0)', { remoteAddress: '203.0.113.9', headers: {}, encrypted: false }, 'http', undefined, '80'],
    ['a Host that is not a host is not repeated', input('203.0.113.9', { host: 'a b"c' }), 'http', undefined, '80'],
    ['trusted: its claims are believed', input('10.0.0.2', claims), 'https', 'evil.example', '8443'],
    ['trusted: the first of a list, case-folded proto', input('10.0.0.2', { 'x-forwarded-proto': 'HTTPS, http', 'x-forwarded-host': 'a.example, b.example' }),
      'https', 'a.example', '443'],
    ['trusted: invalid claims fall back to the connection', input('10.0.0.2', { 'x-forwarded-proto': 'gopher', 'x-forwarded-host': 'a/b', 'x-forwarded-port': 'http' }),
      'http', 'api.example.com', '80'],
    ['trusted: the port of a believed host', input('10.0.0.2', { 'x-forwarded-host': 'a.example:9000' }), 'http', 'a.example:9000', '9000']
  ]
  for (const [name, request, proto, host, port] of cases) {
    const out = forwardingHeaders(request, DEFAULTS, trusted)
    t.same([out['x-forwarded-proto'], out['x-forwarded-host'], out['x-forwarded-port']], [proto, host, port], name)
  }
})

t.test('each X-Forwarded header can be turned off', async (t) => {
  const out = forwardingHeaders(input('203.0.113.9', {}), { ...DEFAULTS, xForwardedProto: false, xForwardedHost: false, xForwardedPort: false }, trusted)
  t.same(out, { 'x-forwarded-for': '203.0.113.9' })
})

t.test('Forwarded (RFC 7239) is off by default, and quotes IPv6 and non-token values when on', async (t) => {
  t.notOk('forwarded' in forwardingHeaders(input('203.0.113.9', {}), DEFAULTS, trusted))
  const on = { ...DEFAULTS, forwarded: true }
  const cases: Array<[name: string, request: ForwardingInput, options: RawForwarding, expected: string]> = [
    ['IPv4 peer', input('203.0.113.9', {}), on, 'for=203.0.113.9;host=api.example.com;proto=http'],
    ['IPv6 peer is bracketed and quoted', input('2606:4700::1', {}), on, 'for="[2606:4700::1]";host=api.example.com;proto=http'],
    ['a host with a port is quoted', input('203.0.113.9', { host: 'api.example.com:8080' }, true), on, 'for=203.0.113.9;host="api.example.com:8080";proto=https'],
    ['an untrusted peer\'s Forwarded is not read', input('203.0.113.9', { forwarded: 'for=10.0.0.1' }), on, 'for=203.0.113.9;host=api.example.com;proto=http'],
    ['a trusted chain: the client element first, one per hop', input('10.0.0.2', { 'x-forwarded-for': '1.2.3.4, 2001:db8::7', 'x-forwarded-proto': 'https' }), on,
      'for=1.2.3.4;host=api.example.com;proto=https, for="[2001:db8::7]", for=10.0.0.2'],
    ['replace: the client alone', input('10.0.0.2', { 'x-forwarded-for': '1.2.3.4' }), { ...on, xForwardedFor: 'replace' }, 'for=1.2.3.4;host=api.example.com;proto=http'],
    ['remove: X-Forwarded-For goes, Forwarded still lists the chain', input('10.0.0.2', { 'x-forwarded-for': '1.2.3.4' }), { ...on, xForwardedFor: 'remove' },
      'for=1.2.3.4;host=api.example.com;proto=http, for=10.0.0.2'],
    ['no Host: no host parameter', { remoteAddress: '203.0.113.9', headers: {}, encrypted: false }, on, 'for=203.0.113.9;proto=http']
  ]
  for (const [name, request, options, expected] of cases) t.equal(forwardingHeaders(request, options, trusted).forwarded, expected, name)
})

t.test('the input is not modified', async (t) => {
  const request = input('10.0.0.2', { 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'https' })
  const snapshot = structuredClone(request)
  forwardingHeaders(request, { ...DEFAULTS, forwarded: true, clientIpHeaders: ['x-real-ip'] }, trusted)
  t.same(request, snapshot)
})

t.test('the worked example in docs/proxying.md, under each setting', async (t) => {
  const lb = compileIpMatcher(['10.0.0.0/8'])
  const request = input('10.0.0.2', { 'x-forwarded-for': '6.6.6.6, 1.2.3.4', 'x-forwarded-proto': 'https' })
  const on = { ...DEFAULTS, forwarded: true, clientIpHeaders: ['x-real-ip'] }
  t.same(forwardingHeaders(request, on, lb), {
    'x-forwarded-for': '1.2.3.4, 10.0.0.2',
    'x-real-ip': '1.2.3.4',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'api.example.com',
    'x-forwarded-port': '443',
    forwarded: 'for=1.2.3.4;host=api.example.com;proto=https, for=10.0.0.2'
  })
  const cases: Array<[name: string, options: RawForwarding, trust: typeof lb | null, xff: string | undefined, forwarded: string | undefined, realIp: string]> = [
    ['append', { ...DEFAULTS, clientIpHeaders: ['x-real-ip'] }, lb, '1.2.3.4, 10.0.0.2', undefined, '1.2.3.4'],
    ['replace', { ...on, xForwardedFor: 'replace' }, lb, '1.2.3.4', 'for=1.2.3.4;host=api.example.com;proto=https', '1.2.3.4'],
    ['remove', { ...on, xForwardedFor: 'remove' }, lb, undefined, 'for=1.2.3.4;host=api.example.com;proto=https, for=10.0.0.2', '1.2.3.4'],
    ['balancer not trusted', on, null, '10.0.0.2', 'for=10.0.0.2;host=api.example.com;proto=http', '10.0.0.2']
  ]
  for (const [name, options, trust, xff, forwarded, realIp] of cases) {
    const out = forwardingHeaders(request, options, trust)
    t.same([out['x-forwarded-for'], out.forwarded, out['x-real-ip']], [xff, forwarded, realIp], name)
  }
  const untrusted = forwardingHeaders(request, on, null)
  t.same([untrusted['x-forwarded-proto'], untrusted['x-forwarded-port']], ['http', '80'], 'the connection scopegate saw')
})
