import t from 'tap'
import { compileIpMatcher, parseCidr, unmapIPv4 } from '../../src/net/ip-matcher.js'

t.test('parseCidr reads addresses and ranges of both families', async (t) => {
  const cases: Array<[text: string, expected: ReturnType<typeof parseCidr>]> = [
    ['10.0.0.0/8', { address: '10.0.0.0', prefix: 8, family: 'ipv4' }],
    ['10.1.2.3', { address: '10.1.2.3', prefix: 32, family: 'ipv4' }],
    ['0.0.0.0/0', { address: '0.0.0.0', prefix: 0, family: 'ipv4' }],
    ['10.1.2.3/32', { address: '10.1.2.3', prefix: 32, family: 'ipv4' }],
    ['10.1.2.3/8', { address: '10.1.2.3', prefix: 8, family: 'ipv4' }],
    ['2001:db8::/32', { address: '2001:db8::', prefix: 32, family: 'ipv6' }],
    ['::1', { address: '::1', prefix: 128, family: 'ipv6' }],
    ['::/0', { address: '::', prefix: 0, family: 'ipv6' }],
    ['fe80::/10', { address: 'fe80::', prefix: 10, family: 'ipv6' }],
    // IPv4-mapped entries are the IPv4 range they name
    ['::ffff:10.0.0.0/104', { address: '10.0.0.0', prefix: 8, family: 'ipv4' }],
    ['::ffff:10.1.2.3', { address: '10.1.2.3', prefix: 32, family: 'ipv4' }],
    ['::ffff:a01:203', { address: '10.1.2.3', prefix: 32, family: 'ipv4' }],
    ['::ffff:0:0/96', { address: '0.0.0.0', prefix: 0, family: 'ipv4' }]
  ]
  for (const [text, expected] of cases) t.strictSame(parseCidr(text), expected, text)
})

t.test('parseCidr returns null for anything else', async (t) => {
  const cases = [
    '', 'garbage', 'localhost', '10.0.0.0/', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/+8', '10.0.0.0/8/8',
    '10.0.0.0/ 8', ' 10.0.0.0/8', '10.0.0/8', '10.0.0.256', '010.0.0.1', '2001:db8::/129', '2001:db8:::/32',
    'fe80::1%eth0', 'fe80::%eth0/10', '::ffff:10.0.0.0/80', '10.0.0.0/8a', '10.0.0.0/0x8', '[::1]'
  ]
  for (const text of cases) t.equal(parseCidr(text), null, JSON.stringify(text))
})

t.test('compileIpMatcher names the bad entry', async (t) => {
  t.throws(() => compileIpMatcher(['10.0.0.0/8', 'nope/8']), new Error('"nope/8" is not an IP address or CIDR'))
  t.throws(() => compileIpMatcher(['2001:db8::/200']), new Error('"2001:db8::/200" is not an IP address or CIDR'))
})

t.test('has() matches by range, family and IPv4-mapping', async (t) => {
  const matcher = compileIpMatcher(['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1'])
  const cases: Array<[ip: string, expected: boolean]> = [
    ['10.0.0.0', true],
    ['10.255.255.255', true],
    ['10.1.2.3', true],
    ['11.0.0.0', false],
    ['9.255.255.255', false],
    ['192.168.1.7', true],
    ['192.168.1.8', false],
    ['2001:db8::1', true],
    ['2001:DB8:ffff::1', true],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', true],
    ['2001:db9::1', false],
    ['::1', true],
    ['0:0:0:0:0:0:0:1', true],
    ['::2', false],
    // IPv4-mapped IPv6, as Node reports peers on a dual-stack socket, is IPv4
    ['::ffff:10.1.2.3', true],
    ['::FFFF:10.1.2.3', true],
    ['::ffff:a01:203', true],
    ['0:0:0:0:0:ffff:10.1.2.3', true],
    ['::ffff:11.1.2.3', false],
    ['::ffff:192.168.1.7', true],
    // zones are ignored
    ['2001:db8::1%eth0', true],
    // garbage is never in the list, and never throws
    ['', false],
    ['garbage', false],
    ['10.1.2', false],
    ['10.1.2.3.4', false],
    ['10.1.2.3:80', false],
    ['[2001:db8::1]', false],
    [' 10.1.2.3', false],
    ['10.0.0.0/8', false],
    ['x'.repeat(10_000), false]
  ]
  for (const [ip, expected] of cases) {
    t.equal(matcher.has(ip), expected, JSON.stringify(ip.slice(0, 50)))
    t.equal(matcher.has(ip), expected, `${JSON.stringify(ip.slice(0, 50))} again (cached)`)
  }
})

t.test('IPv6 rules do not swallow IPv4 clients, and IPv4 rules do not match IPv6', async (t) => {
  const v6all = compileIpMatcher(['::/0'])
  t.equal(v6all.has('2001:db8::1'), true)
  t.equal(v6all.has('10.1.2.3'), false)
  t.equal(v6all.has('::ffff:10.1.2.3'), false)
  const v4all = compileIpMatcher(['0.0.0.0/0'])
  t.equal(v4all.has('10.1.2.3'), true)
  t.equal(v4all.has('::ffff:10.1.2.3'), true)
  t.equal(v4all.has('2001:db8::1'), false)
  t.equal(v4all.has('::a01:203'), false, 'IPv4-compatible (deprecated) is not IPv4-mapped')
  const mappedEntry = compileIpMatcher(['::ffff:10.0.0.0/104'])
  t.equal(mappedEntry.has('10.9.9.9'), true)
  t.equal(mappedEntry.has('::ffff:10.9.9.9'), true)
  t.equal(mappedEntry.has('11.9.9.9'), false)
})

t.test('an empty list matches nothing', async (t) => {
  const none = compileIpMatcher([])
  for (const ip of ['10.1.2.3', '::1', '::ffff:10.1.2.3', '']) t.equal(none.has(ip), false, ip)
  t.strictSame(none.cidrs, [])
})

t.test('cidrs keeps the entries as written, frozen', async (t) => {
  const input = ['10.0.0.0/8', '::ffff:10.0.0.0/104']
  const matcher = compileIpMatcher(input)
  t.strictSame(matcher.cidrs, input)
  input.push('1.1.1.1')
  t.equal(matcher.cidrs.length, 2, 'a copy, not the caller\'s array')
  t.ok(Object.isFrozen(matcher.cidrs))
  t.ok(Object.isFrozen(matcher))
})

t.test('the answer cache stays right past its bound', async (t) => {
  const matcher = compileIpMatcher(['10.0.0.0/8'])
  for (let i = 0; i < 10_000; i++) {
    const ip = `10.${(i >> 8) & 255}.${i & 255}.1`
    if (!matcher.has(ip)) t.fail(ip)
    if (matcher.has(`11.${(i >> 8) & 255}.${i & 255}.1`)) t.fail(`11.x ${i}`)
  }
  t.equal(matcher.has('10.0.0.1'), true)
  t.equal(matcher.has('11.0.0.1'), false)
})

t.test('unmapIPv4 gives the IPv4 address inside a mapped one', async (t) => {
  const cases: Array<[ip: string, expected: string]> = [
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['::FFFF:10.1.2.3', '10.1.2.3'],
    ['::ffff:a01:203', '10.1.2.3'],
    ['0:0:0:0:0:ffff:10.1.2.3', '10.1.2.3'],
    ['0:0:0:0:0:ffff::', '0.0.0.0'],
    ['10.1.2.3', '10.1.2.3'],
    ['::1', '::1'],
    ['2001:db8:ffff::1', '2001:db8:ffff::1'],
    ['ffff::1', 'ffff::1'],
    ['::ffff:garbage', '::ffff:garbage'],
    ['', '']
  ]
  for (const [ip, expected] of cases) t.equal(unmapIPv4(ip), expected, ip)
})
