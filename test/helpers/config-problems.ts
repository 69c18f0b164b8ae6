/**
 * The problems a config compile reports (a `ConfigError`), for tests that assert them by path and wording.
 * Any other error is thrown on: a crash is not a config problem.
 */
import { ConfigError, type ConfigProblem } from '../../src/config/problems.js'

/** The problems `compile` reports; [] when it compiles. */
export function configProblems (compile: () => unknown): ConfigProblem[] {
  try {
    compile()
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems]
    throw err
  }
  return []
}

/** The problems `compile` reports; throws when it compiles, for configs that must not. */
export function expectConfigProblems (compile: () => unknown): ConfigProblem[] {
  const problems = configProblems(compile)
  if (problems.length === 0) throw new Error('expected a ConfigError')
  return problems
}
