/**
 * Compiled address lists: `server.trustProxy` and each route's `policy.network`. Built once per config,
 * asked once or more per request.
 *
 * Matching is done by `net.BlockList`, so the address arithmetic is Node's own. On top of it, two
 * choices that BlockList leaves open are fixed here:
 * - IPv4 rules match IPv4 clients, however the socket reports them: on a dual-stack listener Node gives
 *   `::ffff:10.1.2.3`, which is looked up as `10.1.2.3`. IPv6 rules match only real IPv6 clients, so
 *   `::/0` means "every IPv6 client" and does not quietly take in all of IPv4 (BlockList alone would).
 *   An IPv4-mapped entry in the config (`::ffff:10.0.0.0/104`) is read as the IPv4 range it names.
 * - A BlockList lookup costs a few microseconds (it builds a native address each call), so answers are
 *   remembered in a small bounded map: a client's address repeats on every request it makes.
 */
import { BlockList, isIPv4, isIPv6, SocketAddress } from 'node:net'

/** A compiled list of addresses and ranges. */
export interface IpMatcher {
  /**
   * Whether the address is in one of the ranges. IPv4-mapped IPv6 addresses are looked up as IPv4, and
   * an IPv6 zone (`fe80::1%eth0`) is ignored. Anything that is not an IP address gives false.
   */
  has (ip: string): boolean
  /** The entries it was compiled from, as written. */
  readonly cidrs: readonly string[]
}

/** One parsed entry: a bare address is a range of one (`/32`, `/128`). */
export interface ParsedCidr {
  address: string
  prefix: number
  family: 'ipv4' | 'ipv6'
}

/** Entries per matcher's answer cache; on overflow it is emptied and starts again. */
const CACHE_ENTRIES = 4096
/** Longest string worth caching: an IPv6 address with an embedded IPv4 is 45 characters. */
const CACHE_KEY_CHARS = 45

const PREFIX = /^[0-9]{1,3}$/

/** `::ffff:0:0/96`, the IPv4-mapped range, for telling mapped addresses apart in any spelling. */
const MAPPED = new BlockList()
MAPPED.addSubnet('::ffff:0:0', 96, 'ipv6')

/**
 * The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:10.1.2.3` and `::ffff:a01:203` both give
 * `10.1.2.3`); any other string is returned unchanged.
 */
export function unmapIPv4 (ip: string): string {
  // The spelling Node uses for remoteAddress: checked without building a native address.
  if (ip.startsWith('::ffff:')) {
    const tail = ip.slice(7)
    if (isIPv4(tail)) return tail
  }
  if (!/ffff/i.test(ip) || !isIPv6(ip) || ip.includes('%') || !MAPPED.check(ip, 'ipv6')) return ip
  // Node prints a mapped address as `::ffff:a.b.c.d`, whatever spelling it was given.
  return new SocketAddress({ address: ip, family: 'ipv6' }).address.slice(7)
}

/**
 * Parses `10.0.0.0/8`, `10.1.2.3`, `2001:db8::/32` or `::1`. Host bits below the prefix are allowed
 * (`10.1.2.3/8` is `10.0.0.0/8`). An IPv4-mapped IPv6 entry is returned as the IPv4 range it covers
 * (`::ffff:10.0.0.0/104` is `10.0.0.0/8`); one with a prefix shorter than 96 mixes the two families and
 * is refused, as are zones (`fe80::1%eth0`).
 * @returns the address, prefix length and family, or null when the text is none of these forms.
 */
export function parseCidr (text: string): ParsedCidr | null {
  const slash = text.indexOf('/')
  const address = slash === -1 ? text : text.slice(0, slash)
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) && !address.includes('%') ? 'ipv6' : null
  if (family === null) return null
  const max = family === 'ipv4' ? 32 : 128
  let prefix = max
  if (slash !== -1) {
    const digits = text.slice(slash + 1)
    if (!PREFIX.test(digits)) return null
    prefix = Number(digits)
    if (prefix > max) return null
  }
  if (family === 'ipv6') {
    const v4 = unmapIPv4(address)
    if (v4 !== address) return prefix < 96 ? null : { address: v4, prefix: prefix - 96, family: 'ipv4' }
  }
  return { address, prefix, family }
}

/**
 * Compiles a list of addresses and CIDR ranges (IPv4 and IPv6, see `parseCidr`) into a matcher. An empty
 * list matches nothing.
 * @throws Error `"<entry>" is not an IP address or CIDR` for the first entry that does not parse.
 */
export function compileIpMatcher (cidrs: readonly string[]): IpMatcher {
  const v4 = new BlockList()
  const v6 = new BlockList()
  for (const cidr of cidrs) {
    const parsed = parseCidr(cidr)
    if (parsed === null) throw new Error(`"${cidr}" is not an IP address or CIDR`)
    const list = parsed.family === 'ipv4' ? v4 : v6
    list.addSubnet(parsed.address, parsed.prefix, parsed.family)
  }

  function lookup (ip: string): boolean {
    if (isIPv4(ip)) return v4.check(ip, 'ipv4')
    const zone = ip.indexOf('%')
    const bare = zone === -1 ? ip : ip.slice(0, zone)
    if (!isIPv6(bare)) return false
    const mapped = unmapIPv4(bare)
    return mapped !== bare ? v4.check(mapped, 'ipv4') : v6.check(bare, 'ipv6')
  }

  const answers = new Map<string, boolean>()
  function has (ip: string): boolean {
    if (typeof ip !== 'string') return false
    const known = answers.get(ip)
    if (known !== undefined) return known
    const answer = lookup(ip)
    if (ip.length <= CACHE_KEY_CHARS) {
      if (answers.size >= CACHE_ENTRIES) answers.clear()
      answers.set(ip, answer)
    }
    return answer
  }

  return Object.freeze({ has, cidrs: Object.freeze([...cidrs]) })
}
