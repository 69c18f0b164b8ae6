/**
 * Ajv's validation errors to config problems worded for an operator: one problem per thing wrong, at the
 * path of the value (`routes[2].policy.audience.deny[0]: must be a string`), with the schema's own
 * `x-message` where it has one and a "did you mean" for a mistyped key.
 */
import type { ErrorObject } from 'ajv'
import { formatPath } from './interpolate.js'
import type { ConfigProblem } from './problems.js'

/**
 * Keywords whose errors only summarize others: `if` fails only when `then`/`else` did, and
 * `propertyNames` repeats its inner error (which names the key). `anyOf`/`oneOf` are dropped when an
 * error from inside them says more.
 */
const SUMMARIES = new Set(['if', 'propertyNames'])
const APPLICATORS = new Set(['anyOf', 'oneOf'])

/** A value of the wrong type also fails these; the type error alone says what is wrong. */
const IMPLIED_BY_TYPE = new Set(['enum', 'const', 'pattern', 'not', 'minLength', 'minItems', 'minimum', 'maximum'])

/** The problems behind `errors` (Ajv's, for `tree`), without those that only repeat another. */
export function schemaProblems (errors: readonly ErrorObject[], tree: unknown): ConfigProblem[] {
  const typeFailed = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath))
  const refused = new Set(errors.filter((e) => e.keyword === 'not').map((e) => e.instancePath))
  const problems: ConfigProblem[] = []
  for (const error of errors) {
    if (SUMMARIES.has(error.keyword)) continue
    if (APPLICATORS.has(error.keyword) && errors.some((e) => e.schemaPath.startsWith(`${error.schemaPath}/`))) continue
    if (IMPLIED_BY_TYPE.has(error.keyword) && typeFailed.has(error.instancePath)) continue
    // `"HS256" is refused: …` says more than the list of allowed algorithms
    if (error.keyword === 'enum' && refused.has(error.instancePath)) continue
    problems.push(toProblem(error, tree))
  }
  return problems
}

function toProblem (error: ErrorObject, tree: unknown): ConfigProblem {
  const segments = pointerSegments(error.instancePath, tree)
  const params = error.params as Record<string, unknown>
  const custom = customMessage(error)

  if (error.keyword === 'required') {
    const missing = String(params.missingProperty)
    return { path: formatPath([...segments, missing]), message: custom ?? 'is required' }
  }
  if (error.propertyName !== undefined) {
    return { path: formatPath(segments), message: `invalid key ${JSON.stringify(error.propertyName)}: ${custom ?? describe(error)}` }
  }
  if (error.keyword === 'type' && segments.length === 0) {
    return { path: '', message: 'the config must be an object (a mapping with at least upstreams and routes)' }
  }
  return { path: formatPath(segments), message: custom ?? describe(error) }
}

/** The schema's own wording for this error (`x-message`), if it has one. */
function customMessage (error: ErrorObject): string | undefined {
  const parent: unknown = error.parentSchema
  if (typeof parent !== 'object' || parent === null) return undefined
  const messages = (parent as Record<string, unknown>)['x-message']
  if (typeof messages !== 'object' || messages === null) return undefined
  const message = (messages as Record<string, unknown>)[error.keyword]
  if (typeof message !== 'string') return undefined
  return message.replace('{value}', () => show(error.data))
}

function describe (error: ErrorObject): string {
  const params = error.params as Record<string, unknown>
  const limit = Number(params.limit)
  switch (error.keyword) {
    case 'type': {
      const types = Array.isArray(params.type) ? params.type as string[] : String(params.type).split(',')
      return `must be ${types.map(withArticle).join(' or ')}`
    }
    case 'additionalProperties': {
      const key = String(params.additionalProperty)
      const hint = suggest(key, knownKeys(error.parentSchema))
      return `unknown key ${JSON.stringify(key)}${hint === undefined ? '' : ` (did you mean ${JSON.stringify(hint)}?)`}`
    }
    case 'enum':
      return `must be one of: ${(params.allowedValues as unknown[]).map(String).join(', ')}`
    case 'const':
      return `must be ${show(params.allowedValue)}`
    case 'minItems':
      return limit === 1 ? 'must not be empty' : `must have at least ${limit} items`
    case 'maxItems':
      return `must have at most ${limit} items`
    case 'minLength':
      return limit === 1 ? 'must not be empty' : `must be at least ${limit} characters long`
    case 'maxLength':
      return `must be at most ${limit} characters long`
    case 'minProperties':
      return limit === 1 ? 'must not be empty' : `must have at least ${limit} entries`
    case 'minimum':
      return `must be at least ${limit}`
    case 'maximum':
      return `must be at most ${limit}`
    case 'uniqueItems': {
      const list = error.data
      const repeated = Array.isArray(list) ? list[Number(params.j)] : undefined
      return `must not list ${show(repeated)} twice`
    }
    case 'pattern':
      return `must match ${String(params.pattern)}`
    case 'not':
    case 'false schema':
      return 'is not allowed here'
    default:
      return error.message ?? `fails ${error.keyword}`
  }
}

const ARTICLES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'a boolean',
  array: 'a list',
  object: 'an object',
  null: 'null'
}

function withArticle (type: string): string {
  return ARTICLES[type] ?? type
}

function show (value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value)
}

/** `/routes/2/policy` to `['routes', 2, 'policy']`, reading the data to tell list indexes from keys. */
export function pointerSegments (pointer: string, tree: unknown): Array<string | number> {
  if (pointer === '') return []
  const segments: Array<string | number> = []
  let node = tree
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (Array.isArray(node)) {
      const index = Number(key)
      segments.push(index)
      node = node[index]
    } else {
      segments.push(key)
      node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined
    }
  }
  return segments
}

function knownKeys (schema: unknown): string[] {
  if (typeof schema !== 'object' || schema === null) return []
  const properties = (schema as Record<string, unknown>).properties
  return typeof properties === 'object' && properties !== null ? Object.keys(properties) : []
}

/** The known key a typo most likely meant: within two edits, and closer than a third of its length. */
function suggest (key: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return bestDistance <= Math.min(2, Math.ceil(key.length / 3)) ? best : undefined
}

function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution)
    }
    previous = current
  }
  return previous[b.length] ?? 0
}
