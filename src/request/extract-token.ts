/**
 * Finds the bearer token. Node keeps only the first of duplicated Authorization headers in
 * `req.headers`, so the raw header list is read to refuse a request that carries two. A scheme other than
 * Bearer is "no bearer credentials" (RFC 6750 §3.1: 401 without an error code), while a Bearer header that
 * is not `Bearer <token68>` is a malformed request (400).
 */
import { deny } from '../shared/errors.js'

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

/** The bearer token, or null when the request carries no bearer credentials. */
export function extractToken (values: readonly string[]): string | null {
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
  return token
}
