/**
 * Reads identity out of a verified payload, per the issuer's claim config: scopes as a space-delimited
 * string or an array, roles from a top-level claim whose name may contain dots and slashes or from a
 * nested path, the client id from the first present of several claims. The payload's claim types were
 * checked first (`check-claim-types.ts`), so nothing here converts one type into another.
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

/** A string claim; an empty string names nothing. Never a number's text: a numeric `sub` is refused, not converted. */
export function stringClaim (value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null
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

const EMPTY: readonly string[] = Object.freeze([])

/**
 * One shared copy of each distinct list (frozen) and client id. Most tokens of a client carry the same
 * client id, scopes, roles and audience, so the token cache's entries then point at one copy instead of
 * holding their own: less live heap, and less garbage when an entry is evicted. Bounded: once it holds
 * `max` values it starts afresh, so a stream of unique values costs no more than not interning.
 */
export class Interner {
  private readonly values = new Map<string, readonly string[] | string>()
  private readonly max: number

  constructor (max = 1024) { this.max = max }

  get size (): number { return this.values.size }

  list (list: readonly string[]): readonly string[] {
    if (list.length === 0) return EMPTY
    // As JSON, so ["a b"] and ["a", "b"] stay apart, and no list is taken for a plain string.
    const key = JSON.stringify(list)
    const known = this.values.get(key)
    if (typeof known === 'object') return known
    const frozen = Object.freeze(list.slice())
    this.remember(key, frozen)
    return frozen
  }

  text (text: string | null): string | null {
    if (text === null) return null
    const known = this.values.get(text)
    if (typeof known === 'string') return known
    this.remember(text, text)
    return text
  }

  private remember (key: string, value: readonly string[] | string): void {
    if (this.values.size >= this.max) this.values.clear()
    this.values.set(key, value)
  }
}

const AS_IS: Pick<Interner, 'list' | 'text'> = { list: (list) => list, text: (text) => text }

/** The identity in a payload; `shared` dedupes the client id and the lists across tokens (see Interner). */
export function identityClaims (payload: JwtPayload, claims: ClaimConfig, shared: Pick<Interner, 'list' | 'text'> = AS_IS): IdentityClaims {
  const aud = payload.aud
  const audiences = aud === undefined || aud === null ? null : typeof aud === 'string' ? [aud] : listClaim(aud, / +/)
  return {
    subject: stringClaim(readClaim(payload, claims.subject)),
    clientId: shared.text(stringClaim(firstPresent(payload, claims.clientId))),
    scopes: shared.list(listClaim(firstPresent(payload, claims.scope), / +/)),
    roles: shared.list(listClaim(readClaim(payload, claims.roles), /[ ,]+/)),
    // An empty `aud` list names no audience: it is judged as a missing one.
    audiences: audiences === null || audiences.length === 0 ? null : shared.list(audiences)
  }
}
