/** The YAML files the deploy tests read: every `.yaml`/`.yml` below a folder, in a stable order. */
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

/** Every YAML file below `dir`, sorted, as paths. */
export function yamlFiles (dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return yamlFiles(path)
    return /\.ya?ml$/.test(name) ? [path] : []
  }).sort()
}
