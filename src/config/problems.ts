/**
 * What is wrong with a config, as every config stage reports it: a list of problems, each with the path an
 * operator can find in the file (`routes[2].policy.audience.deny[0]: must be a string`), thrown together
 * as one ConfigError.
 */

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

/** `path: message`, or the message alone for the file as a whole. */
export function formatProblem (problem: ConfigProblem): string {
  return problem.path === '' ? problem.message : `${problem.path}: ${problem.message}`
}

/** The problems with repeats left out, first occurrence first. */
export function dedupe (problems: readonly ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>()
  return problems.filter((problem) => {
    const key = `${problem.path}\u0000${problem.message}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}
