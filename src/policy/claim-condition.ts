/**
 * The declarative conditions (docs/policy.md, "Conditions"): one claim and one operator, compiled at
 * load into a small function. The common cases read as data (`tenant` in a list, `groups` contains
 * `ops`, `acr` at least a level, `auth_time` no older than 15m); anything else is CEL
 * (`cel-condition.ts`). A claim that is absent or of another type fails the condition, never throws.
 */
import type { ClaimScalar, ClaimSegments, CompiledCondition, ConditionResult, RawCondition, RequestFacts } from '../config/types.js'
import { readClaim } from '../token/claims.js'

/** The operators, one per condition. */
export const CLAIM_OPERATORS = ['equals', 'in', 'contains', 'atLeast', 'maxAge', 'exists'] as const

const NUMERIC = /^-?\d+(?:\.\d+)?$/

/** A number, or a string of one (`acr: "2"`); null otherwise. */
function numeric (value: unknown): number | null {
  if (typeof value === 'number' && Number.isFinite(value)) return value
  return typeof value === 'string' && NUMERIC.test(value) ? Number(value) : null
}

const show = (value: unknown): string => JSON.stringify(value) ?? 'undefined'

function condition (label: string, claim: ClaimSegments, perRequest: boolean,
  test: (value: unknown, request: RequestFacts | null) => boolean | string): CompiledCondition {
  return {
    label,
    perRequest,
    evaluate (claims, request): ConditionResult {
      const value = readClaim(claims, claim)
      const verdict = test(value, request)
      return typeof verdict === 'string' ? { pass: false, value, error: verdict } : { pass: verdict, value }
    }
  }
}

/**
 * A declarative condition with exactly one operator (the caller checked that), compiled. `maxAgeMs` is
 * `maxAge` already parsed.
 */
export function compileClaimCondition (raw: RawCondition, claim: ClaimSegments, maxAgeMs: number): CompiledCondition {
  const name = claim.join('.')
  if (raw.equals !== undefined) {
    const want: ClaimScalar = raw.equals
    return condition(`${name} equals ${show(want)}`, claim, false, (value) => value === want)
  }
  if (raw.in !== undefined) {
    const allowed = new Set<unknown>(raw.in)
    return condition(`${name} in ${show(raw.in)}`, claim, false,
      (value) => (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') && allowed.has(value))
  }
  if (raw.contains !== undefined) {
    const want: ClaimScalar = raw.contains
    return condition(`${name} contains ${show(want)}`, claim, false,
      (value) => Array.isArray(value) ? value.includes(want) : `${name} is not a list`)
  }
  if (raw.atLeast !== undefined) {
    const levels = raw.levels
    if (levels !== undefined) {
      const floor = levels.indexOf(String(raw.atLeast))
      return condition(`${name} at least ${show(raw.atLeast)} of ${show(levels)}`, claim, false, (value) => {
        const rank = typeof value === 'string' ? levels.indexOf(value) : -1
        return rank < 0 ? `${name} is not one of the levels` : rank >= floor
      })
    }
    const floor = numeric(raw.atLeast) ?? Number.NaN
    return condition(`${name} at least ${show(raw.atLeast)}`, claim, false, (value) => {
      const number = numeric(value)
      return number === null ? `${name} is not a number` : number >= floor
    })
  }
  if (raw.maxAge !== undefined) {
    // Time passes between requests with the same token: never remembered per token.
    return condition(`${name} no older than ${raw.maxAge}`, claim, true, (value, request) => {
      if (typeof value !== 'number' || !Number.isFinite(value)) return `${name} is not a NumericDate`
      if (request === null) return 'needs the clock'
      return request.nowMs - value * 1000 <= maxAgeMs
    })
  }
  const present = raw.exists !== false
  return condition(`${name} ${present ? 'exists' : 'is absent'}`, claim, false, (value) => (value !== undefined && value !== null) === present)
}
