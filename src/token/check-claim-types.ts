/**
 * Every claim scopegate reads must have the JSON type its RFC gives it; a claim of another type is
 * refused (401 `invalid_token`, reason `token_claim_invalid`), never coerced. Coercion is how a policy and
 * an upstream come to disagree: a numeric `sub` turned into text, an `aud` array with a nested array
 * filtered down to the strings it holds, a scope array with an object in it read as the scopes around it.
 *
 * - `iss`, `sub`, `client_id`, `azp`, `jti` (RFC 7519 §4.1, RFC 8693 §4.3, OIDC Core §2): strings;
 * - `aud` (RFC 7519 §4.1.3): a string or an array of strings;
 * - `exp`, `nbf`, `iat` (RFC 7519 §4.1.4–4.1.6): finite numbers (`exp` is always required);
 * - the issuer's configured claims: `claims.subject` and each `claims.clientId` a string; each
 *   `claims.scope` and `claims.roles` a delimited string or an array of non-empty strings;
 * - every claim a route forwards (`forward.claims`, any route): a string or a finite number; null or
 *   absent sends no header.
 *
 * A claim that is present must have its type even when an earlier alternative wins: `client_id: "web"`
 * with `azp: 7` is refused. JSON `null` is a value, not an absence (as in jose's claim checks), except in
 * `forward.claims`. With `requireTyp: true` (the RFC 9068 profile) the claims of RFC 9068 §2.2 are
 * required too. The rules are derived from the compiled config once per issuer; see docs/security.md.
 */
import type { ClaimSegments, CompiledConfig, CompiledIssuer } from '../config/types.js'
import { deny } from '../shared/errors.js'
import { readClaim } from './claims.js'
import type { JwtPayload } from './parse-jwt.js'

type ClaimType = 'string' | 'audience' | 'list' | 'time' | 'header'

interface ClaimRule {
  path: ClaimSegments
  /** Dotted, for the log detail. */
  name: string
  type: ClaimType
}

interface IssuerRules {
  typed: readonly ClaimRule[]
  /** Claims that must be present (RFC 9068 §2.2 when the issuer requires `typ: at+jwt`). */
  required: readonly string[]
}

/** RFC 9068 §2.2: the claims every JWT access token carries. */
const AT_JWT_REQUIRED = ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti']

const REGISTERED: ReadonlyArray<[name: string, type: ClaimType]> = [
  ['iss', 'string'], ['sub', 'string'], ['client_id', 'string'], ['azp', 'string'], ['jti', 'string'],
  ['aud', 'audience'], ['exp', 'time'], ['nbf', 'time'], ['iat', 'time']
]

const WHAT: Readonly<Record<ClaimType, string>> = {
  string: 'a string',
  audience: 'a string or an array of strings',
  list: 'a string or an array of non-empty strings',
  time: 'a number (seconds since the epoch)',
  header: 'a string or a number'
}

const rulesByIssuer = new WeakMap<CompiledIssuer, IssuerRules>()

/** The rules for an issuer under a config: built on the first token of that issuer, then reused. */
function rulesFor (issuer: CompiledIssuer, config: CompiledConfig): IssuerRules {
  let rules = rulesByIssuer.get(issuer)
  if (rules !== undefined) return rules
  const typed = new Map<string, ClaimRule>()
  const add = (path: ClaimSegments, type: ClaimType): void => {
    const key = JSON.stringify(path)
    // A registered claim keeps its RFC type even when the config also reads it (`claims.subject: sub`).
    if (!typed.has(key)) typed.set(key, { path, name: path.join('.'), type })
  }
  for (const [name, type] of REGISTERED) add([name], type)
  add(issuer.claims.subject, 'string')
  for (const path of issuer.claims.clientId) add(path, 'string')
  for (const path of issuer.claims.scope) add(path, 'list')
  add(issuer.claims.roles, 'list')
  for (const route of config.routes) for (const path of route.forward.claims.values()) add(path, 'header')
  rules = Object.freeze({ typed: Object.freeze([...typed.values()]), required: issuer.requireTyp ? AT_JWT_REQUIRED : ['exp'] })
  rulesByIssuer.set(issuer, rules)
  return rules
}

function hasType (value: unknown, type: ClaimType): boolean {
  switch (type) {
    case 'string': return typeof value === 'string'
    case 'time': return typeof value === 'number' && Number.isFinite(value)
    case 'header': return value === null || typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))
    case 'audience': return typeof value === 'string' || (Array.isArray(value) && value.every((item) => typeof item === 'string'))
    case 'list': return typeof value === 'string' || (Array.isArray(value) && value.every((item) => typeof item === 'string' && item !== ''))
  }
}

function typeOf (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

/** The time claims, seconds since the epoch, once their types are known. */
export interface TimeClaims {
  exp: number
  nbf?: number
  iat?: number
}

/**
 * Throws 401 `invalid_token` (reason `token_claim_invalid`) when a claim scopegate reads has another type
 * than its RFC or the config gives it, or a required claim is missing. The detail names the claim and
 * the type found, never its value. Returns the time claims, now known to be numbers.
 */
export function checkClaimTypes (payload: JwtPayload, issuer: CompiledIssuer, config: CompiledConfig): TimeClaims {
  const rules = rulesFor(issuer, config)
  for (const name of rules.required) {
    const value = payload[name]
    // An empty `aud` names no audience: under the profile it is as missing as no `aud` at all.
    if (value === undefined || (Array.isArray(value) && value.length === 0)) {
      throw deny.invalidToken('token_claim_invalid', 'the token lacks a claim an access token must have',
        `${name} is required${issuer.requireTyp ? ' (requireTyp: the RFC 9068 profile)' : ''}`)
    }
  }
  for (const rule of rules.typed) {
    const value = readClaim(payload, rule.path)
    if (value === undefined || hasType(value, rule.type)) continue
    throw deny.invalidToken('token_claim_invalid', 'the token has a claim of the wrong type', `${rule.name} is ${typeOf(value)}, not ${WHAT[rule.type]}`)
  }
  return payload as JwtPayload & TimeClaims
}
