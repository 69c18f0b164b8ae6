/**
 * Compiles a route's `policy.conditions` (docs/policy.md, "Conditions") and reports what a schema
 * cannot: which keys go together, a CEL expression that does not parse or type-check, a level that is
 * not in its list, an operator that cannot apply to a registered claim's type. Each problem names its path
 * (`routes[2].policy.conditions[1].cel: …`). The conditions are split into those that depend on the
 * token and route alone, which the engine remembers per token, and those that read the request or the clock.
 */
import { parseDuration } from '../shared/duration.js'
import { compileCel } from '../policy/cel-condition.js'
import { CLAIM_OPERATORS, compileClaimCondition } from '../policy/claim-condition.js'
import type { ClaimSegments, CompiledCondition, CompiledPolicy, RawCondition } from './types.js'

type AddProblem = (path: string, message: string) => void

/** Registered claims (RFC 7519, OpenID Connect Core) and their JSON types, to catch an operator that can never hold. */
const REGISTERED_TYPES: Readonly<Record<string, 'string' | 'number' | 'boolean'>> = {
  iss: 'string',
  sub: 'string',
  jti: 'string',
  azp: 'string',
  acr: 'string',
  email: 'string',
  exp: 'number',
  nbf: 'number',
  iat: 'number',
  auth_time: 'number',
  updated_at: 'number',
  email_verified: 'boolean',
  phone_number_verified: 'boolean'
}

/** Why an operator cannot hold on a registered claim of a known type, or null. */
function typeMismatch (raw: RawCondition, name: string): string | null {
  const type = REGISTERED_TYPES[name]
  if (type === undefined) return null
  if (raw.contains !== undefined) return `"${name}" is a ${type}, never a list: use equals or in`
  if (raw.maxAge !== undefined && type !== 'number') return `"${name}" is a ${type}, not a NumericDate`
  for (const value of raw.equals === undefined ? raw.in ?? [] : [raw.equals]) {
    const actual: string = typeof value
    if (actual !== type) return `"${name}" is a ${type}: compare it with a ${type}, not ${JSON.stringify(value)}`
  }
  return null
}

function compileOne (raw: RawCondition, path: string, routeId: string, add: AddProblem): CompiledCondition | null {
  const operators = CLAIM_OPERATORS.filter((op) => raw[op] !== undefined)
  if (raw.cel !== undefined) {
    if (raw.claim !== undefined || operators.length > 0 || raw.levels !== undefined) {
      add(path, 'cel stands alone: write either cel, or claim with one operator')
      return null
    }
    const compiled = compileCel(raw.cel, routeId)
    if ('problem' in compiled) {
      add(`${path}.cel`, compiled.problem)
      return null
    }
    return compiled
  }
  if (raw.claim === undefined) {
    add(path, `needs cel, or claim with one of ${CLAIM_OPERATORS.join(', ')}`)
    return null
  }
  if (operators.length !== 1) {
    add(path, `needs exactly one of ${CLAIM_OPERATORS.join(', ')}${operators.length > 1 ? ` (has ${operators.join(', ')})` : ''}`)
    return null
  }
  const claim: ClaimSegments = typeof raw.claim === 'string' ? [raw.claim] : [...raw.claim]
  const problem = claim.length === 1 ? typeMismatch(raw, claim[0] as string) : null
  if (problem !== null) {
    add(`${path}.claim`, problem)
    return null
  }
  if (raw.levels !== undefined && raw.atLeast === undefined) {
    add(`${path}.levels`, 'only applies with atLeast')
    return null
  }
  if (raw.atLeast !== undefined) {
    if (raw.levels !== undefined && !raw.levels.includes(String(raw.atLeast))) {
      add(`${path}.atLeast`, `must be one of levels (${raw.levels.join(', ')})`)
      return null
    }
    if (raw.levels === undefined && !/^-?\d+(?:\.\d+)?$/.test(String(raw.atLeast))) {
      add(`${path}.atLeast`, 'must be a number, or one of the levels given in levels')
      return null
    }
  }
  let maxAgeMs = 0
  if (raw.maxAge !== undefined) {
    try {
      maxAgeMs = parseDuration(raw.maxAge)
    } catch (err) {
      add(`${path}.maxAge`, (err as Error).message)
      return null
    }
  }
  return compileClaimCondition(raw, claim, maxAgeMs)
}

/** A route's conditions, split by what they read; problems are reported under `path` (`routes[i].policy.conditions`). */
export function compileConditions (raw: readonly RawCondition[] | undefined, path: string, routeId: string,
  add: AddProblem): CompiledPolicy['conditions'] {
  const token: CompiledCondition[] = []
  const request: CompiledCondition[] = []
  raw?.forEach((item, i) => {
    const compiled = compileOne(item, `${path}[${i}]`, routeId, add)
    if (compiled !== null) (compiled.perRequest ? request : token).push(compiled)
  })
  return { token, request }
}
