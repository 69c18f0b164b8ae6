/**
 * A config file to the compiled config every command uses: read and validate it (`parse.ts`), then
 * compile it (`compile.ts`). Also which file a command reads.
 */
import { compileConfig } from './compile.js'
import { readConfigFile } from './parse.js'
import type { CompiledConfig } from './types.js'

/** The config file a command uses: `--config`, else `$SCOPEGATE_CONFIG`, else `config/scopegate.yaml`. */
export function configPath (flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.SCOPEGATE_CONFIG ?? 'config/scopegate.yaml'
}

/** Read, validate and compile a config file. Throws ConfigError with every problem. */
export async function loadConfig (file: string, env: NodeJS.ProcessEnv = process.env): Promise<CompiledConfig> {
  return compileConfig(await readConfigFile(file, env), file)
}
