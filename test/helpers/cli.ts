/**
 * The `scopegate` command as an operator runs it: `node dist/cli.js …` in a child process. `npm test`
 * builds dist/ first.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`)

export interface Result { code: number | null, stdout: string, stderr: string }

/** Runs the CLI in `cwd` (asynchronously, so servers in this process keep answering). */
export function run (args: string[], cwd: string, env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const { SCOPEGATE_CONFIG: _ignored, ...base } = process.env
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}
