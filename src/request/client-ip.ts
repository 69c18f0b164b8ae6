/**
 * The client address that network rules are decided on (`X-Forwarded-For` is believed only from
 * `trustProxy` addresses; see docs/proxying.md). Anyone can write an X-Forwarded-For header, so an entry
 * counts only if a trusted hop appended it: the list is read from the right, past our own trusted
 * proxies, and the first address that is not one of them is the client, the same rule as nginx's realip
 * module with `real_ip_recursive on`. Taking the leftmost entry instead would let any client pick its
 * own address.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net'
import { type IpMatcher, unmapIPv4 } from '../net/ip-matcher.js'

const PORT = /^:[0-9]{1,5}$/

/**
 * One X-Forwarded-For entry as an address: `10.1.2.3`, `10.1.2.3:5555`, `2001:db8::1`, `[2001:db8::1]`
 * or `[2001:db8::1]:5555`. Null when it is none of these (`unknown`, a host name, garbage).
 */
function hopAddress (entry: string): string | null {
  if (entry.charCodeAt(0) === 0x5b) { // [v6] or [v6]:port
    const close = entry.indexOf(']')
    if (close === -1) return null
    const rest = entry.slice(close + 1)
    if (rest !== '' && !PORT.test(rest)) return null
    const address = entry.slice(1, close)
    return isIPv6(address) ? unmapIPv4(address) : null
  }
  const colon = entry.indexOf(':')
  if (colon !== -1 && colon === entry.lastIndexOf(':')) { // v4:port (an IPv6 address has several colons)
    const address = entry.slice(0, colon)
    return PORT.test(entry.slice(colon)) && isIPv4(address) ? address : null
  }
  return isIP(entry) === 0 ? null : unmapIPv4(entry)
}

/**
 * The client's address, IPv4-mapped IPv6 given as IPv4.
 *
 * @param remoteAddress The socket peer (`req.socket.remoteAddress`); undefined gives `''`, which no
 *   network rule matches.
 * @param forwardedFor The `X-Forwarded-For` header(s); several headers are read as one list, in order.
 * @param trusted The `trustProxy` matcher, or null when no proxy is trusted.
 * @returns The peer, unless the peer is trusted; then, walking X-Forwarded-For from the right, the first
 *   address that is not trusted. If every entry is trusted, the leftmost; if an entry is not an
 *   address, the last good hop to its right (possibly the peer).
 */
export function clientIp (
  remoteAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: IpMatcher | null
): string {
  const peer = remoteAddress === undefined ? '' : unmapIPv4(remoteAddress)
  if (trusted === null || forwardedFor === undefined || !trusted.has(peer)) return peer
  const entries = (typeof forwardedFor === 'string' ? forwardedFor : forwardedFor.join(',')).split(',')
  let hop = peer
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = (entries[i] as string).trim()
    if (entry === '') continue
    const address = hopAddress(entry)
    if (address === null) return hop
    hop = address
    if (!trusted.has(hop)) return hop
  }
  return hop
}

/**
 * The hops the upstream may believe, client first: the client address `clientIp` decides on, the
 * trusted proxies' entries to its right, and the socket peer last. Whatever a client wrote to the left
 * of its own address is dropped, so the list sent upstream never presents a forged entry as a hop.
 * Addresses are normalized as `clientIp` gives them (ports and brackets removed, IPv4-mapped as IPv4).
 *
 * @returns `[peer]` when the peer is not trusted; `[]` when the socket has no address (already closed).
 */
export function forwardedChain (
  remoteAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: IpMatcher | null
): string[] {
  if (remoteAddress === undefined) return []
  const peer = unmapIPv4(remoteAddress)
  if (trusted === null || forwardedFor === undefined || !trusted.has(peer)) return [peer]
  const entries = (typeof forwardedFor === 'string' ? forwardedFor : forwardedFor.join(',')).split(',')
  const chain = [peer]
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = (entries[i] as string).trim()
    if (entry === '') continue
    const address = hopAddress(entry)
    if (address === null) break
    chain.push(address)
    if (!trusted.has(address)) break
  }
  return chain.reverse()
}
