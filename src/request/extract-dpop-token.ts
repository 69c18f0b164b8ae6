/**
 * Finds a token sent with the DPoP scheme (RFC 9449 §7.1): `Authorization: DPoP <token68>`. The same
 * rules as `extract-token.ts` apply: one Authorization header, a token68, and no second token in the query.
 * Returns null for any other scheme, which `extractToken` then reads.
 */
import { deny } from '../shared/errors.js'
import { carriesTokenParameter, tokenDuplicated } from './extract-token.js'

const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/
/** An Authorization value of the DPoP scheme. */
export const DPOP_SCHEME = /^\s*dpop(?:\s|$)/i

/** The DPoP-scheme token, or null when the request's one Authorization header is of another scheme (or absent). */
export function extractDpopToken (values: readonly string[], query = ''): string | null {
  if (values.length !== 1 || !DPOP_SCHEME.test(values[0] as string)) return null
  const token = (values[0] as string).trim().slice(4).trim()
  if (!TOKEN68.test(token)) throw deny.badRequest('authorization_malformed', 'the Authorization header must be "DPoP <token>"')
  if (query.length > 1 && carriesTokenParameter(query)) throw tokenDuplicated('access_token in the query')
  return token
}

/** Every `DPoP` header value in a raw header list (`[name, value, name, value, …]`), so a second one is seen. */
export function dpopProofValues (rawHeaders: readonly string[]): string[] {
  const values: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name !== undefined && name.length === 4 && name.toLowerCase() === 'dpop') values.push(rawHeaders[i + 1] ?? '')
  }
  return values
}
