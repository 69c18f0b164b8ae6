/**
 * Conditions written in CEL (docs/policy.md, "CEL"), with `@marcbachmann/cel-js`: parsed and type-checked
 * once at load against the variables below, so a typo or an unknown variable is a `validate` problem, and
 * bounded in size (`schema.ts` caps the text, the environment the tree). At request time an expression
 * is a function call; a runtime error (a claim the token lacks, a claim of another type) never throws
 * out of here: the condition fails and the log says why.
 *
 * JSON numbers are CEL doubles; whole numbers in the claims are handed over as CEL ints instead, so
 * `now - claims.auth_time < 300` reads as written. Converted claims are remembered per payload object.
 */
import { Environment } from '@marcbachmann/cel-js'
import type { CompiledCondition, ConditionResult, RequestFacts } from '../config/types.js'

/** The variables an expression may use; the request's are marked, as they cannot be remembered per token. */
const VARIABLES = {
  claims: { type: 'map<string, dyn>', perRequest: false },
  route: { type: 'string', perRequest: false },
  method: { type: 'string', perRequest: true },
  host: { type: 'string', perRequest: true },
  path: { type: 'string', perRequest: true },
  clientIp: { type: 'string', perRequest: true },
  now: { type: 'int', perRequest: true }
} as const

type VariableName = keyof typeof VARIABLES

const environment = (() => {
  const env = new Environment({ limits: { maxAstNodes: 256, maxDepth: 32, maxListElements: 64, maxMapEntries: 64, maxCallArguments: 8 } })
  for (const [name, { type }] of Object.entries(VARIABLES)) env.registerVariable(name, type)
  return env
})()

/** The first line of a cel-js message: the rest draws the expression with a caret. */
function firstLine (err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? ''
}

/** Identifiers an expression names, found in its tree (nodes are `{ op, args }`). */
function identifiers (node: unknown, found: Set<string>, budget = { left: 10_000 }): Set<string> {
  if (budget.left-- <= 0 || typeof node !== 'object' || node === null) return found
  const { op, args } = node as { op?: unknown, args?: unknown }
  if (op === 'id' && typeof args === 'string') found.add(args)
  if (Array.isArray(args)) for (const arg of args) identifiers(arg, found, budget)
  else if (typeof args === 'object') identifiers(args, found, budget)
  return found
}

/** Whole JSON numbers as CEL ints (BigInt), recursively; everything else as it is. */
function toCel (value: unknown): unknown {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : value
  if (Array.isArray(value)) return value.map(toCel)
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {}
    // Defined, never assigned: a claim named `__proto__` stays a claim and cannot become the map's prototype.
    for (const [key, item] of Object.entries(value)) Object.defineProperty(out, key, { value: toCel(item), enumerable: true, writable: true, configurable: true })
    return out
  }
  return value
}

const converted = new WeakMap<object, unknown>()

function celClaims (claims: Readonly<Record<string, unknown>>): unknown {
  let value = converted.get(claims)
  if (value === undefined) {
    value = toCel(claims)
    converted.set(claims, value)
  }
  return value
}

/** For explain: BigInt is not JSON. */
function plain (value: unknown): unknown {
  return typeof value === 'bigint' ? Number(value) : value
}

/**
 * A CEL condition for one route, or the problem with it (parse error, unknown variable, a result that is
 * not a bool).
 */
export function compileCel (text: string, routeId: string): CompiledCondition | { problem: string } {
  let run: (context: Record<string, unknown>) => unknown
  try {
    const checked = environment.check(text)
    if (!checked.valid) return { problem: firstLine(checked.error) }
    if (checked.type !== 'bool') return { problem: `must be a bool expression, not ${String(checked.type)} (compare it: == true)` }
    run = environment.parse(text)
  } catch (err) {
    return { problem: firstLine(err) }
  }
  const named = identifiers((run as unknown as { ast: unknown }).ast, new Set())
  const perRequest = [...named].some((name) => name in VARIABLES && VARIABLES[name as VariableName].perRequest)
  return {
    label: text,
    perRequest,
    evaluate (claims, request: RequestFacts | null): ConditionResult {
      if (perRequest && request === null) return { pass: false, value: undefined, error: 'needs the request' }
      try {
        const context: Record<string, unknown> = { claims: celClaims(claims), route: routeId }
        if (request !== null) {
          context.method = request.method
          context.host = request.host
          context.path = request.path
          context.clientIp = request.clientIp
          context.now = BigInt(Math.floor(request.nowMs / 1000))
        }
        const value = run(context)
        return { pass: value === true, value: plain(value) }
      } catch (err) {
        return { pass: false, value: undefined, error: firstLine(err) }
      }
    }
  }
}
