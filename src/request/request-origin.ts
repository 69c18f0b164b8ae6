/**
 * The origin a request was sent to, `scheme://host[:port]`, in the form a DPoP proof's `htu` is compared in
 * (`token/verify-dpop-proof.ts`): lower-case, default port dropped, as the WHATWG URL parser writes it.
 * The scheme is what the client used: TLS on this socket, or `X-Forwarded-Proto` from a trusted proxy; the
 * host is the Host header (or what a trusted ingress says it was). See docs/dpop.md.
 */

/** Memo of origins already computed: a gateway serves few hosts. Bounded: emptied when full. */
const seen = new Map<string, string | null>()
const SEEN_MAX = 256

/** `scheme://host` in canonical form, or null when it is not an http(s) origin with a plain host. */
export function requestOrigin (text: string): string | null {
  let origin = seen.get(text)
  if (origin !== undefined) return origin
  origin = null
  try {
    const url = new URL(text)
    const plain = url.pathname === '/' && url.search === '' && url.hash === '' && url.username === '' && url.password === ''
    if ((url.protocol === 'http:' || url.protocol === 'https:') && plain && !/[/?#@\\]/.test(text.slice(url.protocol.length + 2))) {
      origin = `${url.protocol}//${url.host}`
    }
  } catch {}
  if (seen.size >= SEEN_MAX) seen.clear()
  seen.set(text, origin)
  return origin
}

/**
 * The origin of a request received on this listener: `proto` is `X-Forwarded-Proto` when the peer is
 * trusted (else undefined), `encrypted` whether the socket is TLS, `host` the Host header.
 */
export function receivedOrigin (host: string | undefined, encrypted: boolean, forwardedProto: string | undefined): string | null {
  if (host === undefined || host === '') return null
  const proto = forwardedProto === undefined ? (encrypted ? 'https' : 'http') : forwardedProto.split(',')[0]?.trim().toLowerCase()
  if (proto !== 'http' && proto !== 'https') return null
  return requestOrigin(`${proto}://${host}`)
}
