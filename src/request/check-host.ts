/**
 * The Host a request names must be one, and agree with its target. A request with two Host headers has
 * two readings: Node keeps the first, a cache or an upstream in front of or behind scopegate may keep the
 * last, and a request that means one host to one hop and another to the next is how caches get poisoned
 * and virtual hosts crossed. RFC 9112 §3.2 says answer 400; so does a missing Host on HTTP/1.1.
 *
 * An absolute-form target (`GET http://gw.example/api/x HTTP/1.1`) names its host itself; RFC 9112 §3.2.2
 * has the server believe the target over Host. scopegate accepts it, decides it on its path like any other
 * (see `normalize-path.ts`) and forwards it to the route's upstream as an origin-form path, but only when
 * the target's authority is spelled exactly as Host (case aside): a client sends them identical
 * (RFC 9112 §3.2), so a disagreement is a request built to be read two ways, and is refused. Userinfo in
 * the target (`http://user@host/`) is refused too (RFC 9110 §4.2.4). See docs/proxying.md.
 */
import { deny } from '../shared/errors.js'

/** The scheme and authority of an absolute-form target. */
const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/

/**
 * Throws a 400 `invalid_request` GatewayError when the Host headers of a raw header list
 * (`[name, value, name, value, …]`, as received) do not name exactly one host that agrees with the
 * request-target. HTTP/1.0 may omit Host.
 */
export function checkHost (rawHeaders: readonly string[], target: string, httpVersion: string): void {
  let host: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name === undefined || name.length !== 4 || name.toLowerCase() !== 'host') continue
    if (host !== undefined) throw deny.badRequest('host_duplicated', 'the request has more than one Host header')
    host = rawHeaders[i + 1] ?? ''
  }
  if (host === undefined && httpVersion === '1.1') throw deny.badRequest('request_malformed', 'the request has no Host header')
  if (target.charCodeAt(0) === 0x2f) return // origin-form: the common case
  const absolute = ABSOLUTE.exec(target)
  if (absolute === null) return // neither form: normalize-path refuses it
  const authority = absolute[1] ?? ''
  if (authority.includes('@')) throw deny.badRequest('host_mismatch', 'the request target must not carry user information')
  if (host !== undefined && authority.toLowerCase() !== host.trim().toLowerCase()) {
    throw deny.badRequest('host_mismatch', 'the Host header does not match the request target',
      `target authority ${JSON.stringify(authority)}`)
  }
}

/**
 * HTTP/2's shape of the same rule (RFC 9113 §8.3.1): the host is `:authority`, and a `Host` header beside
 * it must name the same host, or the request reads two ways (an upstream given HTTP/1.1 sees `Host` only).
 * Either may be absent, not both; neither may repeat, and `:authority` carries no user information.
 * Returns the host, which the HTTP layer then treats as HTTP/1.1's `Host`.
 */
export function checkHttp2Host (rawHeaders: readonly string[]): string {
  let authority: string | undefined
  let host: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name === ':authority') {
      if (authority !== undefined) throw deny.badRequest('host_duplicated', 'the request has more than one :authority')
      authority = rawHeaders[i + 1] ?? ''
    } else if (name !== undefined && name.length === 4 && name.toLowerCase() === 'host') {
      if (host !== undefined) throw deny.badRequest('host_duplicated', 'the request has more than one Host header')
      host = rawHeaders[i + 1] ?? ''
    }
  }
  const named = authority ?? host
  if (named === undefined || named === '') throw deny.badRequest('request_malformed', 'the request has no :authority and no Host header')
  if (named.includes('@')) throw deny.badRequest('host_mismatch', 'the request authority must not carry user information')
  if (authority !== undefined && host !== undefined && authority.toLowerCase() !== host.trim().toLowerCase()) {
    throw deny.badRequest('host_mismatch', 'the Host header does not match :authority', `:authority ${JSON.stringify(authority)}`)
  }
  return named
}
