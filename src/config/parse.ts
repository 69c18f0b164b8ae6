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
import { normalize } from './normalize.js'
import { ConfigError, dedupe, type ConfigProblem } from './problems.js'
import { pointerSegments, schemaProblems } from './schema-problems.js'
import { validateConfig } from './schema.js'
import type { RawConfig } from './types.js'

/**
 * What `checkConfigText` makes of config text: the validated config, or every problem found and, when
 * the text parsed, the tree the schema saw (defaults filled in) with the schema's errors, so the meaning
 * of the parts it accepted can still be checked (see `valid-parts.ts`).
 */
export type CheckedText =
  | { ok: true, config: RawConfig }
  | { ok: false, problems: ConfigProblem[], tree: unknown, errors: ErrorObject[] }

/**
 * Parses, interpolates and validates config text. `source` names it in messages and picks the format:
 * a name ending in `.json` is JSON, anything else YAML. `env` defaults to `process.env`.
 * @throws ConfigError with every problem found.
 */
export function parseConfigText (text: string, source: string, env: Record<string, string | undefined> = process.env): RawConfig {
  const checked = checkConfigText(text, source, env)
  if (!checked.ok) throw new ConfigError(source, checked.problems)
  return checked.config
}

/** `parseConfigText`, returning its problems instead of throwing them. */
export function checkConfigText (
  text: string,
  source: string,
  env: Record<string, string | undefined> = process.env
): CheckedText {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text
  const parsed = /\.json$/i.test(source) ? parseJson(body) : parseYaml(body)
  if (!parsed.ok) return { ok: false, problems: parsed.problems, tree: undefined, errors: [] }
  if (parsed.tree === null || parsed.tree === undefined) {
    return { ok: false, problems: [{ path: '', message: 'the config is empty' }], tree: undefined, errors: [] }
  }

  const interpolated = interpolate(parsed.tree, env)
  const tree = interpolated.value
  const problems = [...interpolated.problems]
  let valid = validateConfig(tree)
  if (!valid && restoreStrings(validateConfig.errors ?? [], tree, interpolated.retyped)) valid = validateConfig(tree)
  const errors = valid ? [] : [...(validateConfig.errors ?? [])]
  // A value whose variable is unset is empty now; what the schema says about it would only repeat that.
  const unset = new Set(problems.map((problem) => problem.path))
  for (const problem of schemaProblems(errors, tree)) {
    if (!unset.has(problem.path)) problems.push(problem)
  }
  if (problems.length > 0) return { ok: false, problems: dedupe(problems), tree, errors }
  return { ok: true, config: normalize(tree as RawConfig) }
}

/**
 * Reads a config file's text.
 * @throws ConfigError when the file cannot be read (`cannot read config file: ENOENT`).
 */
export async function readConfigText (file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err))
    throw new ConfigError(file, [{ path: '', message: `cannot read config file: ${code}` }])
  }
}

/**
 * Reads and parses a config file (see `parseConfigText`).
 * @throws ConfigError, also when the file cannot be read.
 */
export async function readConfigFile (file: string, env?: Record<string, string | undefined>): Promise<RawConfig> {
  return parseConfigText(await readConfigText(file), file, env)
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
