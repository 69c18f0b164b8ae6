/**
 * Finds the bearer token. Node keeps only the first of duplicated Authorization headers in
 * `req.headers`, so the raw header list is read to refuse a request that carries two. A scheme other than
 * Bearer is "no bearer credentials" (RFC 6750 §3.1: 401 without an error code), while a Bearer header that
 * is not `Bearer <token68>` is a malformed request (400).
 *
 * RFC 6750 §2 lets a client send its token in the header, a form body or the query, and forbids more than
 * one method in a request. scopegate reads only the header; a request that also carries an `access_token`
 * query parameter is refused (400), since the upstream might read that one and act for a token nobody
 * checked. A query token without a header is no bearer credentials at all (401 on a `required` route).
 * The form-body case is checked as the body streams (`request/form-token.ts`, `http/form-body.ts`).
 * See docs/proxying.md.
 */
import { deny, type GatewayError } from '../shared/errors.js'

const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/

/** All Authorization values in a raw header list (`[name, value, name, value, …]`). */
export function authorizationValues (rawHeaders: readonly string[]): string[] {
  const values: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name !== undefined && name.length === 13 && name.toLowerCase() === 'authorization') values.push(rawHeaders[i + 1] ?? '')
  }
  return values
}

/** The RFC 6750 §2.3 parameter, also when percent-encoded (`access%5Ftoken`), as a form decoder reads it. */
export const TOKEN_PARAMETER = 'access_token'

/**
 * True when a query or `application/x-www-form-urlencoded` text (without its leading `?`, or with it)
 * names an `access_token` parameter. Most texts are decided by two substring searches.
 */
export function carriesTokenParameter (text: string): boolean {
  if (!text.includes(TOKEN_PARAMETER) && !text.includes('%')) return false
  return new URLSearchParams(text).has(TOKEN_PARAMETER)
}

const TOKEN_DUPLICATED = 'the token must be sent in the Authorization header only, not also in the request'

/** 400: a bearer header and a token parameter in one request (RFC 6750 §2). */
export const tokenDuplicated = (detail: string): GatewayError => deny.badRequest('token_duplicated', TOKEN_DUPLICATED, detail)

/**
 * The bearer token, or null when the request carries no bearer credentials. `query` is the request's
 * query (with its `?`, or ''): a bearer header beside an `access_token` parameter is refused.
 */
export function extractToken (values: readonly string[], query = ''): string | null {
  if (values.length === 0) return null
  if (values.length > 1) throw deny.badRequest('authorization_duplicated', 'more than one Authorization header')
  const value = (values[0] ?? '').trim()
  const space = value.indexOf(' ')
  const scheme = space < 0 ? value : value.slice(0, space)
  if (scheme.toLowerCase() !== 'bearer') {
    if (value === '') throw deny.badRequest('authorization_malformed', 'the Authorization header is empty')
    return null
  }
  const token = space < 0 ? '' : value.slice(space + 1).trim()
  if (!TOKEN68.test(token)) throw deny.badRequest('authorization_malformed', 'the Authorization header must be "Bearer <token>"')
  if (query.length > 1 && carriesTokenParameter(query)) throw tokenDuplicated('access_token in the query')
  return token
}
