/**
 * `${VAR}` and `${VAR:-default}` in config values, replaced from the environment.
 *
 * It works on the parsed tree, not on the text, so an environment value can never add keys, list items
 * or YAML syntax: it only ever becomes (part of) the one value it stands in. Keys are never substituted.
 * Semantics follow the shell: the default applies when the variable is unset or empty; `${VAR}` of a
 * set-but-empty variable is the empty string. `$${` is a literal `${`; any other `$` is itself.
 * Defaults are literal text (no nested placeholders).
 *
 * A value that is exactly one placeholder (`port: ${PORT}`) is re-read as a YAML scalar after
 * substitution, so `8080` becomes a number and `true` a boolean, as plain text substitution would give.
 * Only numbers and booleans are re-typed: anything else (`[a]`, `a: b`, `null`) stays the string it was.
 * Quoting does not prevent it (`{ port: "${PORT}" }` is how a flow mapping must write it); instead every
 * re-typed value is listed in `retyped`, so the loader can give the text back where the schema wants a
 * string (a numeric client id, say).
 */
import { isScalar, parseDocument } from 'yaml'
import type { ConfigProblem } from './problems.js'
import { isPlainObject } from '../shared/is-plain-object.js'

export interface Interpolated {
  value: unknown
  problems: ConfigProblem[]
  /** Path (as `formatPath` writes it) of each value re-typed to a number or boolean, to its text. */
  retyped: Map<string, string>
}

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const SYNTAX_HINT = 'write ${NAME} or ${NAME:-default}, or $${ for a literal ${'

/**
 * Returns a substituted copy of `tree` (the input is not modified) and every problem found: an unset
 * variable with no default (`server.proxy.port: environment variable PORT is not set`; the value
 * becomes empty) or a malformed placeholder.
 */
export function interpolate (tree: unknown, env: Record<string, string | undefined>): Interpolated {
  const problems: ConfigProblem[] = []
  const retyped = new Map<string, string>()

  const walk = (node: unknown, segments: Array<string | number>): unknown => {
    if (typeof node === 'string') {
      const path = formatPath(segments)
      const result = substitute(node, env)
      for (const message of result.problems) problems.push({ path, message })
      const value = result.whole ? retype(result.text) : result.text
      if (value !== result.text) retyped.set(path, result.text)
      return value
    }
    if (Array.isArray(node)) return node.map((item, index) => walk(item, [...segments, index]))
    if (isPlainObject(node)) {
      // fromEntries defines own properties, so a `__proto__` key stays a key (and schema validation refuses it).
      return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, walk(value, [...segments, key])]))
    }
    return node
  }

  return { value: walk(tree, []), problems, retyped }
}

interface Substituted {
  text: string
  /** The input was exactly one placeholder. */
  whole: boolean
  problems: string[]
}

function substitute (text: string, env: Record<string, string | undefined>): Substituted {
  const problems: string[] = []
  let out = ''
  let whole = false
  let i = 0
  while (i < text.length) {
    const dollar = text.indexOf('$', i)
    if (dollar === -1) {
      out += text.slice(i)
      break
    }
    out += text.slice(i, dollar)
    if (text.startsWith('$${', dollar)) {
      out += '${'
      i = dollar + 3
      continue
    }
    if (!text.startsWith('${', dollar)) {
      out += '$'
      i = dollar + 1
      continue
    }
    const close = text.indexOf('}', dollar + 2)
    if (close === -1) {
      problems.push(`unterminated placeholder "${text.slice(dollar)}": ${SYNTAX_HINT}`)
      out += text.slice(dollar)
      break
    }
    const body = text.slice(dollar + 2, close)
    const separator = body.indexOf(':-')
    const name = separator === -1 ? body : body.slice(0, separator)
    const fallback = separator === -1 ? undefined : body.slice(separator + 2)
    i = close + 1
    if (!VAR_NAME.test(name) || (fallback !== undefined && fallback.includes('${'))) {
      problems.push(`invalid placeholder "${text.slice(dollar, close + 1)}": ${SYNTAX_HINT}`)
      out += text.slice(dollar, close + 1)
      continue
    }
    whole = dollar === 0 && i === text.length
    const value = env[name]
    if (value !== undefined && value !== '') out += value
    else if (fallback !== undefined) out += fallback
    else if (value === undefined) problems.push(`environment variable ${name} is not set`)
  }
  return { text: out, whole, problems }
}

/** The number or boolean a plain YAML scalar with this text would be; otherwise the text itself. */
function retype (text: string): unknown {
  const doc = parseDocument(text)
  if (doc.errors.length > 0 || !isScalar(doc.contents)) return text
  const value: unknown = doc.contents.value
  if (typeof value === 'boolean') return value
  if (typeof value === 'number' && Number.isFinite(value)) return value
  return text
}

const BARE_KEY = /^[A-Za-z_$][A-Za-z0-9_$-]*$/

/**
 * Writes a location in the config the way problems name it: `routes[2].policy.audience.deny[0]`.
 * Keys that are not plain names are quoted: `grants.roles["https://example.com/roles"]`. Root is ''.
 */
export function formatPath (segments: ReadonlyArray<string | number>): string {
  let out = ''
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`
    else if (BARE_KEY.test(segment)) out += out === '' ? segment : `.${segment}`
    else out += `[${JSON.stringify(segment)}]`
  }
  return out
}
