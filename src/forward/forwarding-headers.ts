/**
 * The forwarding headers scopegate sets upstream: who the client is (X-Forwarded-For, RFC 7239
 * Forwarded, and any `clientIpHeaders` such as X-Real-IP) and what it addressed (X-Forwarded-Proto,
 * -Host, -Port). The model is Envoy's `use_remote_address` with trusted hops: the socket peer is always
 * appended; the client's own X-Forwarded-For is kept only as far as `trustProxy` peers vouch for it
 * (the same walk that decides the client address, `forwardedChain`), and its X-Forwarded-Proto, -Host
 * and -Port are believed only when the peer is trusted. The client's copies of all of these are
 * stripped beforehand (`strip-headers.ts`), so what arrives upstream is only what is set here. See
 * docs/proxying.md, "Forwarding headers and trust".
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { RawForwarding } from '../config/types.js'
import { type IpMatcher, unmapIPv4 } from '../net/ip-matcher.js'
import { forwardedChain } from '../request/client-ip.js'

/** What the forwarding headers are computed from: the client's request as received. */
export interface ForwardingInput {
  /** The socket peer, `req.socket.remoteAddress`. */
  remoteAddress: string | undefined
  /** The request headers as Node parsed them (lower-case names, duplicates joined). */
  headers: IncomingHttpHeaders
  /** Whether the client's connection to scopegate is TLS. */
  encrypted: boolean
}

/** `host` or `host:port`: a reg-name, an IPv4 address or a bracketed IPv6 address (RFC 3986 §3.2.2). */
const HOST = /^(?:[A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?$/
const PORT = /^[0-9]{1,5}$/
/** RFC 7230 token characters: a Forwarded value made of these needs no quotes. */
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/

/** The first entry of a comma-separated header, trimmed; a proxy chain lists the client's view first. */
function firstEntry (value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined
  const text = typeof value === 'string' ? value : value[0]
  if (text === undefined) return undefined
  const comma = text.indexOf(',')
  return (comma === -1 ? text : text.slice(0, comma)).trim()
}

function protoOf (input: ForwardingInput, believe: boolean): string {
  if (believe) {
    const claimed = firstEntry(input.headers['x-forwarded-proto'])?.toLowerCase()
    if (claimed === 'http' || claimed === 'https') return claimed
  }
  return input.encrypted ? 'https' : 'http'
}

function hostOf (input: ForwardingInput, believe: boolean): string | undefined {
  if (believe) {
    const claimed = firstEntry(input.headers['x-forwarded-host'])
    if (claimed !== undefined && HOST.test(claimed)) return claimed
  }
  const host = input.headers.host
  return host !== undefined && HOST.test(host) ? host : undefined
}

function portOf (input: ForwardingInput, believe: boolean, host: string | undefined, proto: string): string {
  if (believe) {
    const claimed = firstEntry(input.headers['x-forwarded-port'])
    if (claimed !== undefined && PORT.test(claimed)) return claimed
  }
  const explicit = host === undefined ? undefined : HOST.exec(host)?.[1]
  return explicit ?? (proto === 'https' ? '443' : '80')
}

/** RFC 7239 §6: an IPv6 node is bracketed, and so quoted; any value that is not a token is quoted. */
function forwardedValue (value: string, address: boolean): string {
  if (address && value.includes(':')) return `"[${value}]"`
  return TOKEN.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`
}

/**
 * The forwarding headers to add upstream, lower-case names.
 *
 * @param trusted The `trustProxy` matcher, or null when no proxy is trusted.
 */
export function forwardingHeaders (input: ForwardingInput, options: Readonly<RawForwarding>,
  trusted: IpMatcher | null): Record<string, string> {
  const out: Record<string, string> = {}
  const chain = forwardedChain(input.remoteAddress, input.headers['x-forwarded-for'], trusted)
  const hops = options.xForwardedFor === 'replace' ? chain.slice(0, 1) : chain
  if (options.xForwardedFor !== 'remove' && hops.length > 0) out['x-forwarded-for'] = hops.join(', ')
  const client = chain[0]
  if (client !== undefined) for (const name of options.clientIpHeaders) out[name] = client

  const believe = trusted !== null && input.remoteAddress !== undefined && trusted.has(unmapIPv4(input.remoteAddress))
  const proto = protoOf(input, believe)
  const host = hostOf(input, believe)
  if (options.xForwardedProto) out['x-forwarded-proto'] = proto
  if (options.xForwardedHost && host !== undefined) out['x-forwarded-host'] = host
  if (options.xForwardedPort) out['x-forwarded-port'] = portOf(input, believe, host, proto)

  if (options.forwarded && hops.length > 0) {
    // The first element describes the request the client made (its host and scheme); the rest, one per hop.
    let element = `for=${forwardedValue(hops[0] as string, true)}`
    if (host !== undefined) element += `;host=${forwardedValue(host, false)}`
    element += `;proto=${proto}`
    for (let i = 1; i < hops.length; i++) element += `, for=${forwardedValue(hops[i] as string, true)}`
    out.forwarded = element
  }
  return out
}
