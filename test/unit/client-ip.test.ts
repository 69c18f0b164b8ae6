import t from 'tap'
import { compileIpMatcher } from '../../src/net/ip-matcher.js'
import { clientIp, forwardedChain } from '../../src/request/client-ip.js'

// Our own load balancers: 10.0.0.0/8 and 2001:db8::/32.
const trusted = compileIpMatcher(['10.0.0.0/8', '2001:db8::/32'])

t.test('X-Forwarded-For is ignored unless a proxy is trusted', async (t) => {
  const cases: Array<[peer: string | undefined, xff: string | string[] | undefined, expected: string]> = [
    ['203.0.113.9', '1.2.3.4', '203.0.113.9'],
    ['10.0.0.1', '1.2.3.4', '10.0.0.1'],
    ['::ffff:10.0.0.1', '1.2.3.4', '10.0.0.1'],
    ['10.0.0.1', undefined, '10.0.0.1'],
    [undefined, '1.2.3.4', '']
  ]
  for (const [peer, xff, expected] of cases) {
    t.equal(clientIp(peer, xff, null), expected, `${String(peer)} / ${JSON.stringify(xff)}`)
  }
})

t.test('the rightmost untrusted address is the client', async (t) => {
  const cases: Array<[name: string, peer: string | undefined, xff: string | string[] | undefined, expected: string]> = [
    ['untrusted peer: its X-Forwarded-For is not believed', '203.0.113.9', '1.2.3.4', '203.0.113.9'],
    ['untrusted mapped peer is given as IPv4', '::ffff:203.0.113.9', '1.2.3.4', '203.0.113.9'],
    ['no peer address matches nothing', undefined, '1.2.3.4', ''],
    ['trusted peer, no header', '10.0.0.1', undefined, '10.0.0.1'],
    ['trusted peer, empty header', '10.0.0.1', '', '10.0.0.1'],
    ['trusted peer, empty header list', '10.0.0.1', [], '10.0.0.1'],
    ['one hop', '10.0.0.1', '1.2.3.4', '1.2.3.4'],
    ['mapped trusted peer', '::ffff:10.0.0.1', '1.2.3.4', '1.2.3.4'],
    ['a client-forged entry on the left is not believed', '10.0.0.1', '6.6.6.6, 1.2.3.4', '1.2.3.4'],
    ['trusted hops on the right are skipped', '10.0.0.1', '6.6.6.6, 1.2.3.4, 10.0.0.2, 10.0.0.3', '1.2.3.4'],
    ['all trusted: the leftmost', '10.0.0.1', '10.0.0.5, 10.0.0.2', '10.0.0.5'],
    ['several headers are one list, in order', '10.0.0.1', ['6.6.6.6, 1.2.3.4', '10.0.0.2'], '1.2.3.4'],
    ['several headers, client in the last', '10.0.0.1', ['6.6.6.6', '1.2.3.4'], '1.2.3.4'],
    ['entries are trimmed, empties ignored', '10.0.0.1', ' 6.6.6.6 ,, 1.2.3.4 ,  , ', '1.2.3.4'],
    ['IPv6 hops', '2001:db8::1', '2001:db8::2, 2606:4700::1111', '2606:4700::1111'],
    ['IPv6 trusted hop skipped', '2001:db8::1', '2606:4700::1111, 2001:db8::2', '2606:4700::1111'],
    ['mapped entry given as IPv4', '10.0.0.1', '::ffff:1.2.3.4', '1.2.3.4'],
    ['mapped trusted entry skipped', '10.0.0.1', '1.2.3.4, ::ffff:10.0.0.9', '1.2.3.4'],
    ['bracketed IPv6', '10.0.0.1', '[2606:4700::1111]', '2606:4700::1111'],
    ['bracketed IPv6 with port', '10.0.0.1', '[2606:4700::1111]:443', '2606:4700::1111'],
    ['IPv4 with port', '10.0.0.1', '1.2.3.4:5555', '1.2.3.4'],
    ['trusted IPv4 with port skipped', '10.0.0.1', '1.2.3.4, 10.0.0.2:80', '1.2.3.4'],
    // an entry that is not an address stops the walk at the last good hop
    ['garbage right behind the peer: the peer', '10.0.0.1', '1.2.3.4, unknown', '10.0.0.1'],
    ['garbage behind a trusted hop: that hop', '10.0.0.1', 'unknown, 10.0.0.2', '10.0.0.2'],
    ['garbage left of the client is never reached', '10.0.0.1', 'unknown, 1.2.3.4', '1.2.3.4'],
    ['host name is not an address', '10.0.0.1', 'evil.example', '10.0.0.1'],
    ['CIDR is not an address', '10.0.0.1', '1.2.3.0/24', '10.0.0.1'],
    ['bad port', '10.0.0.1', '1.2.3.4:http', '10.0.0.1'],
    ['IPv6 with bare port is not an address', '10.0.0.1', '2606:4700::1111:443x', '10.0.0.1'],
    ['unclosed bracket', '10.0.0.1', '[2606:4700::1111', '10.0.0.1'],
    ['IPv4 in brackets', '10.0.0.1', '[1.2.3.4]', '10.0.0.1'],
    ['junk after bracket', '10.0.0.1', '[::1]x', '10.0.0.1']
  ]
  for (const [name, peer, xff, expected] of cases) t.equal(clientIp(peer, xff, trusted), expected, name)
})

t.test('trusting everyone believes the leftmost address', async (t) => {
  const everyone = compileIpMatcher(['0.0.0.0/0', '::/0'])
  t.equal(clientIp('10.0.0.1', '1.2.3.4, 5.6.7.8', everyone), '1.2.3.4')
  t.equal(clientIp('::1', '2606:4700::1111, ::ffff:5.6.7.8', everyone), '2606:4700::1111')
})

t.test('forwardedChain: the client address first, the trusted hops, the peer last', async (t) => {
  const cases: Array<[name: string, peer: string | undefined, xff: string | string[] | undefined, expected: string[]]> = [
    ['no socket address: nothing', undefined, '1.2.3.4', []],
    ['untrusted peer: the peer alone', '203.0.113.9', '10.0.0.1', ['203.0.113.9']],
    ['untrusted mapped peer as IPv4', '::ffff:203.0.113.9', '10.0.0.1', ['203.0.113.9']],
    ['trusted peer, no header', '10.0.0.1', undefined, ['10.0.0.1']],
    ['trusted peer, empty header', '10.0.0.1', ' , ', ['10.0.0.1']],
    ['one hop', '10.0.0.1', '1.2.3.4', ['1.2.3.4', '10.0.0.1']],
    ['forged entries left of the client are dropped', '10.0.0.1', '6.6.6.6, 1.2.3.4, 10.0.0.2', ['1.2.3.4', '10.0.0.2', '10.0.0.1']],
    ['several headers', '10.0.0.1', ['6.6.6.6', '1.2.3.4', '10.0.0.2'], ['1.2.3.4', '10.0.0.2', '10.0.0.1']],
    ['all trusted', '10.0.0.1', '10.0.0.5, 10.0.0.2', ['10.0.0.5', '10.0.0.2', '10.0.0.1']],
    ['normalized entries', '10.0.0.1', '[2606:4700::1111]:443, ::ffff:10.0.0.9, 10.0.0.3:80', ['2606:4700::1111', '10.0.0.9', '10.0.0.3', '10.0.0.1']],
    ['garbage stops the walk', '10.0.0.1', '1.2.3.4, unknown, 10.0.0.2', ['10.0.0.2', '10.0.0.1']],
    ['garbage right behind the peer', '10.0.0.1', '1.2.3.4, unknown', ['10.0.0.1']]
  ]
  for (const [name, peer, xff, expected] of cases) t.same(forwardedChain(peer, xff, trusted), expected, name)
  t.same(forwardedChain('10.0.0.1', '1.2.3.4', null), ['10.0.0.1'], 'no trustProxy')
})

t.test('forwardedChain starts with the address clientIp decides on', async (t) => {
  const peers = [undefined, '10.0.0.1', '203.0.113.9', '::ffff:10.0.0.1', '2001:db8::1']
  const headers = [undefined, '', '1.2.3.4', '6.6.6.6, 1.2.3.4, 10.0.0.2', '10.0.0.5, 10.0.0.2', 'unknown, 10.0.0.2', '1.2.3.4, unknown',
    ['6.6.6.6', '2606:4700::1, 2001:db8::2'], '[2606:4700::1111]:443', 'evil.example']
  for (const peer of peers) {
    for (const xff of headers) {
      t.equal(forwardedChain(peer, xff, trusted)[0] ?? '', clientIp(peer, xff, trusted), `${String(peer)} / ${JSON.stringify(xff)}`)
    }
  }
})
