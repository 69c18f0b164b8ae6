/**
 * The meaning checks of `compile.ts` (unknown upstream, duplicate ids, ambiguous routes, …), run on the
 * parts of a config that passed the schema, so one pass reports both kinds of problem.
 *
 * Compiling needs a config the schema accepts, so every item with a schema error is replaced by a
 * placeholder that passes: an issuer or upstream keeps its id (what other parts refer to it by) and a
 * route keeps its place in the list (what problem paths count by); a wrong section is dropped (its
 * defaults fill in) and an unknown key removed. What the schema says about the repaired config is
 * repaired the same way, a few rounds at most; if it still fails, only the schema problems are reported.
 * Problems found inside a placeholder, or under a path that already has a problem, are not reported:
 * they would be about the placeholder, or only repeat what is already said.
 */
import type { ErrorObject } from 'ajv'
import { isPlainObject } from '../shared/is-plain-object.js'
import { compileConfig } from './compile.js'
import { formatPath } from './interpolate.js'
import { normalize } from './normalize.js'
import { ConfigError, type ConfigProblem } from './problems.js'
import { pointerSegments } from './schema-problems.js'
import { validateConfig } from './schema.js'
import type { RawConfig } from './types.js'

/** Repair rounds: each can only replace more of the config, so few are ever needed. */
const MAX_ROUNDS = 4

type Tree = Record<string, unknown>

/** The sections that hold items: a schema error inside one item replaces that item alone. */
const LISTS = new Set(['issuers', 'routes'])

const placeholders = {
  issuers: (index: number, id: unknown): Tree => {
    const host = `https://invalid-issuer-${index}.invalid`
    return { id: typeof id === 'string' ? id : `invalid-issuer-${index}`, issuer: host, jwksUri: `${host}/jwks`, algorithms: ['ES256'], audiences: [host] }
  },
  routes: (index: number): Tree =>
    ({ id: `invalid-route-${index}`, match: { path: `/invalid-route-${index}.invalid` }, upstream: `invalid-route-${index}`, auth: 'none' }),
  upstream: (): Tree => ({ url: 'http://invalid.invalid' }),
  reissue: (): Tree => ({ issuer: 'https://invalid-reissue.invalid' })
}

/**
 * Problems of meaning in the parts of `tree` the schema accepted. `errors` are the schema's errors for
 * `tree`; `reported` the problems already reported, whose paths are not reported again.
 */
export function meaningProblems (tree: unknown, errors: readonly ErrorObject[], reported: readonly ConfigProblem[]): ConfigProblem[] {
  if (!isPlainObject(tree)) return []
  const config = structuredClone(tree)
  const replaced = new Set<string>()
  let current = errors
  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (!repair(config, current, replaced, round)) return []
    if (validateConfig(config)) return compileProblems(normalize(config as unknown as RawConfig), [...replaced, ...reported.map((p) => p.path)])
    current = [...(validateConfig.errors ?? [])]
  }
  return []
}

/** Replaces what each error is about. False when an error leaves nothing to check (the root is wrong). */
function repair (config: Tree, errors: readonly ErrorObject[], replaced: Set<string>, round: number): boolean {
  for (const error of errors) {
    const segments = pointerSegments(error.instancePath, config)
    const params = error.params as { additionalProperty?: string, missingProperty?: string }
    const child = error.propertyName ?? params.additionalProperty ?? params.missingProperty
    const [section, item] = child === undefined ? segments : [...segments, child]
    if (section === undefined) return false
    if (typeof section !== 'string') return false
    if (segments.length === 0) {
      if (!repairRoot(config, error, section, replaced)) return false
    } else if (!repairSection(config, section, item, error, replaced, round)) return false
  }
  return true
}

function repairRoot (config: Tree, error: ErrorObject, key: string, replaced: Set<string>): boolean {
  if (error.keyword === 'additionalProperties') {
    delete config[key]
    return true
  }
  if (error.keyword !== 'required') return false
  config[key] = LISTS.has(key) ? [] : {}
  replaced.add(key)
  return true
}

function repairSection (config: Tree, section: string, item: string | number | undefined, error: ErrorObject,
  replaced: Set<string>, round: number): boolean {
  const value = config[section]
  if (LISTS.has(section) && Array.isArray(value) && typeof item === 'number') {
    // The first round keeps an issuer's id, which routes refer to; a later one gives up on it too.
    const id = round === 0 ? (value[item] as Tree | undefined)?.id : undefined
    value[item] = section === 'issuers' ? placeholders.issuers(item, id) : placeholders.routes(item)
    replaced.add(formatPath([section, item]))
  } else if (section === 'upstreams' && isPlainObject(value) && typeof item === 'string') {
    if (error.propertyName !== undefined) delete value[item]
    else value[item] = placeholders.upstream()
    replaced.add(formatPath([section, item]))
  } else if (section === 'reissue') {
    config.reissue = placeholders.reissue()
    replaced.add(section)
  } else if (section === 'upstreams' || LISTS.has(section)) {
    // The section itself is wrong (not a list, empty): nothing in it can be checked.
    if (round > 0) return false
    config[section] = section === 'upstreams' ? {} : []
    replaced.add(section)
  } else {
    delete config[section]
    replaced.add(section)
  }
  return true
}

/** compileConfig's problems, but none inside a replaced part or under a path already reported. */
function compileProblems (config: RawConfig, covered: readonly string[]): ConfigProblem[] {
  try {
    compileConfig(config)
    return []
  } catch (err) {
    // Anything but a ConfigError would be a bug in compile.ts: the schema problems are reported regardless.
    if (!(err instanceof ConfigError)) return []
    const under = (path: string, prefix: string): boolean =>
      prefix !== '' && (path === prefix || path.startsWith(`${prefix}.`) || path.startsWith(`${prefix}[`))
    return err.problems.filter((problem) => !covered.some((prefix) => under(problem.path, prefix)))
  }
}
