/**
 * The identity headers the upstream (or the ingress, in forward-auth) receives on allow. Values come
 * from verified claims but are still foreign text: anything outside visible ASCII is percent-encoded,
 * so a claim can never split a header or break the upstream request.
 */
import type { CompiledRoute } from '../config/types.js'
import { readClaim } from '../token/claims.js'
import type { VerifiedToken } from '../token/verify-token.js'

const SAFE_VALUE = /^[\x20-\x7e]*$/
/** Unpaired UTF-16 surrogates: JSON can carry them (`"\ud800"`), and `encodeURI` throws a URIError on them. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/** A header-safe rendering of a claim value. */
export function headerValue (value: string): string {
  return SAFE_VALUE.test(value) ? value : encodeURI(value.replace(LONE_SURROGATE, '\uFFFD')).replace(/%25([0-9A-F]{2})/g, '%$1')
}

/**
 * A forwarded claim's text: a string as is, a number as its decimal text. Other types never get here:
 * the verifier refuses a token whose forwarded claim is anything but a string, a number or null
 * (`token/check-claim-types.ts`), so an array or an object is never flattened into a header.
 */
function claimText (value: unknown): string | null {
  if (typeof value === 'string') return value
  if (typeof value === 'number') return String(value)
  return null
}

export function identityHeaders (route: CompiledRoute, token: VerifiedToken | null, scopes: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = { 'x-auth-route': route.id }
  if (token === null) return headers
  if (token.subject !== null) headers['x-auth-subject'] = headerValue(token.subject)
  if (token.clientId !== null) headers['x-auth-client-id'] = headerValue(token.clientId)
  headers['x-auth-scopes'] = headerValue(scopes.join(' '))
  if (token.roles.length > 0) headers['x-auth-roles'] = headerValue(token.roles.join(','))
  headers['x-auth-issuer'] = headerValue(token.issuer.issuer)
  for (const [name, path] of route.forward.claims) {
    const text = claimText(readClaim(token.claims, path))
    if (text !== null) headers[name] = headerValue(text)
  }
  return headers
}
