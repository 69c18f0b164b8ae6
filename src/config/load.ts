/**
 * Config text to a validated, defaulted `RawConfig`: parse (YAML, or JSON for `.json` files),
 * substitute `${VAR}`s, validate against `schema.ts`, and report every problem at once, each with the
 * path an operator can find in the file (`routes[2].policy.audience.deny[0]: must be a string`).
 * `compile.ts` takes it from there (cross-references, CIDRs, route table).
 */
import { readFile } from 'node:fs/promises'
import type { ErrorObject } from 'ajv'
import { parseDocument } from 'yaml'
import { formatPath, interpolate } from './interpolate.js'
import { validateConfig } from './schema.js'
import type { RawConfig } from './types.js'

/** One thing wrong with the config. */
export interface ConfigProblem {
  /** Where: `routes[2].policy.audience.deny[0]`; '' for the file as a whole. */
  path: string
  /** What, worded for an operator: `must be a string`, `unknown key "audiance"`. */
  message: string
}

/** A config that cannot be used, with every problem found in it. */
export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG_INVALID'
  readonly problems: readonly ConfigProblem[]
  /** The file the config came from, or whatever name the caller gave the text. */
  readonly source: string

  constructor (source: string, problems: readonly ConfigProblem[]) {
    super(`invalid config ${source}: ${problems.map(formatProblem).join('; ')}`)
    this.name = 'ConfigError'
    this.source = source
    this.problems = problems
  }
}

/** An error's config problems: a ConfigError's own, or its message as one problem at `path`. */
export function problemsOf (err: unknown, path = ''): readonly ConfigProblem[] {
  return err instanceof ConfigError ? err.problems : [{ path, message: (err as Error).message }]
}

/** One line per problem: `routes[2].policy.audience.deny[0]: must be a string`. */
export function formatProblems (err: ConfigError): string {
  return err.problems.map(formatProblem).join('\n')
}

function formatProblem (problem: ConfigProblem): string {
  return problem.path === '' ? problem.message : `${problem.path}: ${problem.message}`
}

/**
 * Parses, interpolates and validates config text. `source` names it in messages and picks the format:
 * a name ending in `.json` is JSON, anything else YAML. `env` defaults to `process.env`.
 * @throws ConfigError with every problem found.
 */
export function parseConfigText (
  text: string,
  source: string,
  env: Record<string, string | undefined> = process.env
): RawConfig {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text
  const parsed = /\.json$/i.test(source) ? parseJson(body) : parseYaml(body)
  if (!parsed.ok) throw new ConfigError(source, parsed.problems)
  if (parsed.tree === null || parsed.tree === undefined) {
    throw new ConfigError(source, [{ path: '', message: 'the config is empty' }])
  }

  const interpolated = interpolate(parsed.tree, env)
  const tree = interpolated.value
  const problems = [...interpolated.problems]
  let valid = validateConfig(tree)
  if (!valid && restoreStrings(validateConfig.errors ?? [], tree, interpolated.retyped)) valid = validateConfig(tree)
  if (!valid) {
    // A value whose variable is unset is empty now; what the schema says about it would only repeat that.
    const unset = new Set(problems.map((problem) => problem.path))
    for (const problem of schemaProblems(validateConfig.errors ?? [], tree)) {
      if (!unset.has(problem.path)) problems.push(problem)
    }
  }
  if (problems.length > 0) throw new ConfigError(source, dedupe(problems))
  return normalize(tree as RawConfig)
}

/**
 * Reads and parses a config file (see `parseConfigText`).
 * @throws ConfigError, also when the file cannot be read (`cannot read config file: ENOENT`).
 */
export async function readConfigFile (file: string, env?: Record<string, string | undefined>): Promise<RawConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err))
    throw new ConfigError(file, [{ path: '', message: `cannot read config file: ${code}` }])
  }
  return parseConfigText(text, file, env)
}

/**
 * Gives a whole-placeholder value its text back where the schema wants a string and interpolation made
 * it a number or boolean (`deny: [${CLIENT_ID}]` with CLIENT_ID=12345). Returns whether it changed any.
 */
function restoreStrings (errors: readonly ErrorObject[], tree: unknown, retyped: ReadonlyMap<string, string>): boolean {
  let changed = false
  for (const error of errors) {
    const types = (error.params as { type?: unknown }).type
    if (error.keyword !== 'type' || !(types === 'string' || (Array.isArray(types) && types.includes('string')))) continue
    const segments = pointerSegments(error.instancePath, tree)
    const text = retyped.get(formatPath(segments))
    const key = segments.at(-1)
    const parent = valueAt(tree, segments.slice(0, -1))
    if (text === undefined || key === undefined || typeof parent !== 'object' || parent === null) continue
    const container = parent as Record<string | number, unknown>
    container[key] = text
    changed = true
  }
  return changed
}

function valueAt (tree: unknown, segments: ReadonlyArray<string | number>): unknown {
  let node = tree
  for (const segment of segments) {
    node = typeof node === 'object' && node !== null ? (node as Record<string | number, unknown>)[segment] : undefined
  }
  return node
}

/* ------------------------------------------------------------------ parsing ------------------------------------------------------------------ */

type Parsed =
  | { ok: true, tree: unknown }
  | { ok: false, problems: ConfigProblem[] }

function parseYaml (text: string): Parsed {
  // merge: `<<: *defaults` is how YAML users share a block between routes.
  const doc = parseDocument(text, { prettyErrors: true, merge: true, uniqueKeys: true })
  if (doc.errors.length > 0) {
    const lines = text.split('\n')
    // After the first syntax error the parser's view of the structure is a guess, and what follows is
    // mostly its echo; duplicate keys are the exception, each one a mistake of its own.
    const errors = doc.errors.filter((err, index) => index === 0 || err.code === 'DUPLICATE_KEY')
    return {
      ok: false,
      problems: errors.map((err) => {
        const where = err.linePos?.[0]
        // prettyErrors appends " at line L, column C:" and a code frame; keep the one-line reason.
        const reason = (err.message.split('\n')[0] ?? err.message).replace(/ at line \d+, column \d+:?$/, '')
        const at = where === undefined ? '' : ` at line ${where.line}, column ${where.col}`
        // `{ port: ${PORT} }` is the usual cause: in a flow collection `{` and `}` are syntax.
        const hint = where !== undefined && (lines[where.line - 1] ?? '').includes('${')
          ? ' (inside { } or [ ], quote placeholders: "${VAR}")'
          : ''
        return { path: '', message: `YAML syntax error${at}: ${reason}${hint}` }
      })
    }
  }
  try {
    return { ok: true, tree: doc.toJS({ maxAliasCount: 100 }) }
  } catch (err) {
    return { ok: false, problems: [{ path: '', message: `YAML error: ${err instanceof Error ? err.message : String(err)}` }] }
  }
}

function parseJson (text: string): Parsed {
  try {
    return { ok: true, tree: JSON.parse(text) as unknown }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    const position = /at position (\d+)/.exec(message)
    const offset = position === null ? text.length : Number(position[1])
    const before = text.slice(0, offset).split('\n')
    const line = before.length
    const col = (before[before.length - 1] ?? '').length + 1
    const reason = message.replace(/ in JSON at position \d+.*$/, '')
    return { ok: false, problems: [{ path: '', message: `JSON syntax error at line ${line}, column ${col}: ${reason}` }] }
  }
}

/* ------------------------------------------------------------------ Ajv errors to problems ------------------------------------------------------------------ */

/**
 * Keywords whose errors only summarize others: `if` fails only when `then`/`else` did, and
 * `propertyNames` repeats its inner error (which names the key). `anyOf`/`oneOf` are dropped when an
 * error from inside them says more.
 */
const SUMMARIES = new Set(['if', 'propertyNames'])
const APPLICATORS = new Set(['anyOf', 'oneOf'])

/** A value of the wrong type also fails these; the type error alone says what is wrong. */
const IMPLIED_BY_TYPE = new Set(['enum', 'const', 'pattern', 'not', 'minLength', 'minItems', 'minimum', 'maximum'])

function schemaProblems (errors: readonly ErrorObject[], tree: unknown): ConfigProblem[] {
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
function pointerSegments (pointer: string, tree: unknown): Array<string | number> {
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

function dedupe (problems: readonly ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>()
  return problems.filter((problem) => {
    const key = `${problem.path}\u0000${problem.message}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

/* ------------------------------------------------------------------ normalization ------------------------------------------------------------------ */

/** Bare-string `scope` / `clientId` claim alternatives become one-item lists, as `RawConfig` says. */
function normalize (config: RawConfig): RawConfig {
  for (const issuer of config.issuers) {
    const claims = issuer.claims as { scope: unknown, clientId: unknown }
    if (typeof claims.scope === 'string') claims.scope = [claims.scope]
    if (typeof claims.clientId === 'string') claims.clientId = [claims.clientId]
  }
  return config
}
