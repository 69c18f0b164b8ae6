/**
 * A config file to the compiled config every command uses: read and validate it (`parse.ts`), then
 * compile it (`compile.ts`). Also which file a command reads.
 */
import { compileConfig } from './compile.js'
import { checkConfigText, readConfigText } from './parse.js'
import { ConfigError, dedupe } from './problems.js'
import type { CompiledConfig } from './types.js'
import { meaningProblems } from './valid-parts.js'

/** The config file a command uses: `--config`, else `$SCOPEGATE_CONFIG`, else `config/scopegate.yaml`. */
export function configPath (flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.SCOPEGATE_CONFIG ?? 'config/scopegate.yaml'
}

/**
 * Read, validate and compile a config file. Throws ConfigError with every problem: a config the schema
 * refuses also has the meaning of its other parts checked (unknown upstream, duplicate ids, …), so one
 * pass reports both kinds.
 */
export async function loadConfig (file: string, env: NodeJS.ProcessEnv = process.env): Promise<CompiledConfig> {
  const checked = checkConfigText(await readConfigText(file), file, env)
  if (!checked.ok) {
    const meaning = meaningProblems(checked.tree, checked.errors, checked.problems)
    throw new ConfigError(file, dedupe([...checked.problems, ...meaning]))
  }
  return compileConfig(checked.config, file)
}
