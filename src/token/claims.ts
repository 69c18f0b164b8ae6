/**
 * Reads identity out of a verified payload, per the issuer's claim config: scopes as a space-delimited
 * string or an array, roles from a top-level claim whose name may contain dots and slashes or from a
 * nested path, the client id from the first present of several claims.
 */
import type { ClaimSegments } from '../config/types.js'
import type { JwtPayload } from './parse-jwt.js'

/** The value at a claim path, or undefined. Segments are claim names, never split further. */
export function readClaim (payload: JwtPayload, path: ClaimSegments): unknown {
  let value: unknown = payload
  for (const segment of path) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
    if (!Object.prototype.hasOwnProperty.call(value, segment)) return undefined
    value = (value as Record<string, unknown>)[segment]
  }
  return value
}

function firstPresent (payload: JwtPayload, paths: readonly ClaimSegments[]): unknown {
  for (const path of paths) {
    const value = readClaim(payload, path)
    if (value !== undefined && value !== null) return value
  }
  return undefined
}

/** A list claim: an array of strings, or one string of space- (or comma-) delimited names. Order kept, duplicates dropped. */
export function listClaim (value: unknown, delimiter: RegExp): string[] {
  let items: unknown[]
  if (typeof value === 'string') items = value.split(delimiter)
  else if (Array.isArray(value)) items = value
  else return []
  const out: string[] = []
  const seen = new Set<string>()
  for (const item of items) {
    if (typeof item !== 'string' || item === '' || seen.has(item)) continue
    seen.add(item)
    out.push(item)
  }
  return out
}

/** A string claim; numbers are accepted as their decimal text (some IdPs issue numeric subjects). */
export function stringClaim (value: unknown): string | null {
  if (typeof value === 'string') return value === '' ? null : value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return null
}

export interface ClaimConfig {
  scope: readonly ClaimSegments[]
  roles: ClaimSegments
  clientId: readonly ClaimSegments[]
  subject: ClaimSegments
}

export interface IdentityClaims {
  subject: string | null
  clientId: string | null
  scopes: readonly string[]
  roles: readonly string[]
  /** The `aud` values; null when the token has no `aud`. */
  audiences: readonly string[] | null
}

export function identityClaims (payload: JwtPayload, claims: ClaimConfig): IdentityClaims {
  const aud = payload.aud
  const audiences = aud === undefined || aud === null ? null : typeof aud === 'string' ? [aud] : listClaim(aud, / +/)
  return {
    subject: stringClaim(readClaim(payload, claims.subject)),
    clientId: stringClaim(firstPresent(payload, claims.clientId)),
    scopes: listClaim(firstPresent(payload, claims.scope), / +/),
    roles: listClaim(readClaim(payload, claims.roles), /[ ,]+/),
    // An empty `aud` list names no audience: it is judged as a missing one.
    audiences: audiences === null || audiences.length === 0 ? null : audiences
  }
}
