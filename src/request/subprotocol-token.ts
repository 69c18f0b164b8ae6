/**
 * The bearer token a browser sends in `Sec-WebSocket-Protocol`, since its WebSocket API cannot set
 * `Authorization`: one subprotocol `base64url.bearer.authorization.k8s.io.<base64url(token)>`, the form
 * the Kubernetes API server accepts. The entry is taken out of the list, so the upstream negotiates
 * among the others and never sees the token. Two such entries, or one that does not decode to a bearer
 * token, are a malformed request.
 */
import { deny } from '../shared/errors.js'

export const SUBPROTOCOL_TOKEN_PREFIX = 'base64url.bearer.authorization.k8s.io.'

const BASE64URL = /^[A-Za-z0-9_-]+$/
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/

export interface SubprotocolToken {
  /** The token carried in a subprotocol, or null. */
  token: string | null
  /** The other subprotocols, in the order offered. */
  protocols: string[]
}

/** Splits a `Sec-WebSocket-Protocol` value (Node joins repeated headers with `, `) into the token and the rest. */
export function subprotocolToken (header: string | undefined): SubprotocolToken {
  const protocols: string[] = []
  let token: string | null = null
  if (header === undefined) return { token, protocols }
  for (const entry of header.split(',')) {
    const protocol = entry.trim()
    if (protocol === '') continue
    if (!protocol.startsWith(SUBPROTOCOL_TOKEN_PREFIX)) {
      protocols.push(protocol)
      continue
    }
    if (token !== null) throw deny.badRequest('authorization_duplicated', 'more than one token in Sec-WebSocket-Protocol')
    const encoded = protocol.slice(SUBPROTOCOL_TOKEN_PREFIX.length)
    const decoded = BASE64URL.test(encoded) ? Buffer.from(encoded, 'base64url').toString('latin1') : ''
    if (!TOKEN68.test(decoded)) {
      throw deny.badRequest('authorization_malformed', 'the token in Sec-WebSocket-Protocol must be base64url of a bearer token')
    }
    token = decoded
  }
  return { token, protocols }
}
