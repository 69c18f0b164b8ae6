/**
 * The origin (`scheme://host`) of the request an ingress asks about, for checking a DPoP proof's `htu`
 * in forward auth (docs/dpop.md). Believed only from a `server.trustProxy` peer, like the original method
 * and path (`forward-auth-request.ts`), and read in this order:
 *
 * 1. `X-Original-URL` (ingress-nginx): its scheme and authority;
 * 2. `X-Forwarded-Proto` with `X-Forwarded-Host` (Traefik; nginx `auth_request` configured to send them);
 * 3. `X-Forwarded-Proto` with the call's own `Host` (Envoy ext_authz keeps the original authority).
 *
 * A header sent twice, or no scheme at all, leaves the origin unknown (null): a DPoP proof is then
 * refused, never checked against a guess.
 */
import { requestOrigin } from '../request/request-origin.js'

const NAMES = new Set(['x-original-url', 'x-forwarded-proto', 'x-forwarded-host', 'host'])

/** `http(s)://authority` at the start of an `X-Original-URL`. */
const URL_ORIGIN = /^(https?:\/\/[^/?#]*)/i

export function forwardAuthOrigin (rawHeaders: readonly string[], peerTrusted: boolean): string | null {
  if (!peerTrusted) return null
  const found = new Map<string, string[]>()
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] ?? '').toLowerCase()
    if (!NAMES.has(name)) continue
    const values = found.get(name) ?? []
    values.push((rawHeaders[i + 1] ?? '').trim())
    found.set(name, values)
  }
  const one = (name: string): string | null | undefined => {
    const values = found.get(name)
    if (values === undefined) return undefined
    return values.length === 1 ? values[0] as string : null
  }
  const url = one('x-original-url')
  if (url === null) return null
  if (url !== undefined) {
    const match = URL_ORIGIN.exec(url)
    return match === null ? null : requestOrigin(match[1] as string)
  }
  const proto = one('x-forwarded-proto')?.toLowerCase()
  const host = one('x-forwarded-host') ?? one('host')
  if (proto == null || host == null || (proto !== 'http' && proto !== 'https')) return null
  return requestOrigin(`${proto}://${host}`)
}
