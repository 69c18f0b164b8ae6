/**
 * Shared by the operations tests: `scopegate serve` as a real child process (`node dist/cli.js serve`,
 * what operators run) with its JSON log lines collected, free ports for its fixed listener addresses, a
 * Prometheus text parser, and bounded waits. Every process started here is killed by PID in teardown,
 * together with the cluster workers it reported.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { rename, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))

export { freePort } from '../helpers/echo-upstream.js'

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` every 25 ms until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitFor<T> (what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(25)
  }
}

/**
 * The routes the operations tests count decisions on: issuer `test` at `jwks` for `audience`, `todos`
 * (needs read:todos) to the echo upstream at `echoUrl`, `gone` to `downUrl`, where nothing listens (502).
 */
export function todosAndGone (jwks: { issuer: string, url: string }, audience: string, echoUrl: string, downUrl: string): Record<string, unknown> & { routes: unknown[] } {
  return {
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [audience] }],
    upstreams: { todo: { url: echoUrl }, down: { url: downUrl } },
    routes: [
      { id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } } },
      { id: 'gone', match: { path: '/gone' }, upstream: 'down' }
    ]
  }
}

/** Writes a config file atomically (write aside, then rename), as a careful operator or a ConfigMap does. */
export async function writeConfig (file: string, config: Record<string, unknown>): Promise<void> {
  const aside = `${file}.${process.pid}.tmp`
  await writeFile(aside, stringify(config))
  await rename(aside, file)
}

export type LogLine = Record<string, unknown> & { msg?: string, pid?: number }

export interface Served {
  child: ChildProcess
  /** Every JSON line printed on stdout, in order. */
  lines: LogLine[]
  /** Everything printed (stdout and stderr), for asserting what never appears. */
  output: () => string
  /** The first line (from `from` on) that satisfies `match`. */
  waitForLine: (what: string, match: (line: LogLine) => boolean, timeoutMs?: number, from?: number) => Promise<LogLine>
  /** Resolves with the exit code and signal. */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** Sends a signal to the process (not to its workers). */
  signal: (signal: NodeJS.Signals) => void
  /** Kills the process and every worker it reported, if still alive; idempotent. */
  kill: () => Promise<void>
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Starts `node dist/cli.js serve --config FILE` with `env`; its teardown belongs to the caller (`served.kill`). */
export function spawnServe (configFile: string, env: NodeJS.ProcessEnv = {}): Served {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`)
  const child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const lines: LogLine[] = []
  const chunks: string[] = []
  let partial = ''
  child.stdout?.setEncoding('utf8')
  child.stdout?.on('data', (chunk: string) => {
    chunks.push(chunk)
    partial += chunk
    const parts = partial.split('\n')
    partial = parts.pop() ?? ''
    for (const line of parts) {
      if (line.trim() === '') continue
      try { lines.push(JSON.parse(line) as LogLine) } catch { lines.push({ msg: '<not json>', text: line }) }
    }
  })
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => { chunks.push(chunk) })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  let exitedYet = false
  void exited.then(() => { exitedYet = true })

  const waitForLine = async (what: string, match: (line: LogLine) => boolean, timeoutMs = 15_000, from = 0): Promise<LogLine> =>
    await waitFor(what, () => {
      const found = lines.slice(from).find(match)
      if (found !== undefined) return found
      if (exitedYet) throw new Error(`scopegate exited while waiting for ${what}:\n${chunks.join('')}`)
      return undefined
    }, timeoutMs)

  return {
    child,
    lines,
    output: () => chunks.join(''),
    waitForLine,
    exited,
    signal: (signal) => { if (!exitedYet && child.pid !== undefined) process.kill(child.pid, signal) },
    kill: async () => {
      // Workers log with their own pid; only those pids, and the child's, are ever signalled.
      const pids = new Set<number>()
      for (const line of lines) if (typeof line.pid === 'number' && line.pid !== child.pid) pids.add(line.pid)
      if (!exitedYet) {
        child.kill('SIGKILL')
        await Promise.race([exited, sleep(5000)])
      }
      for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL')
    }
  }
}

/** One sample of the Prometheus text format. */
export interface Sample { name: string, labels: Record<string, string>, value: number }

/** Parses the Prometheus text exposition format (what prom-client writes). */
export function parseMetrics (text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line)
    if (match === null) continue
    const labels: Record<string, string> = {}
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1] as string] = (pair[2] as string).replace(/\\(.)/g, '$1')
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) })
  }
  return samples
}

/** The value of the one sample named `name` whose labels include `labels`; undefined when there is none. */
export function metric (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`)
  return found[0]?.value
}

/** The sum of every sample named `name` whose labels include `labels`. */
export function metricSum (samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0)
}
