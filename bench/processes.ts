/**
 * The benchmark's processes: a minimal upstream, a bare @fastify/http-proxy (the no-auth ceiling), and
 * scopegate itself (`node dist/cli.js serve`, exactly what operators run). Each runs in its own process,
 * pinned to a core with taskset where it exists, and is stopped by PID when the run ends.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const HAS_TASKSET = spawnSync('taskset', ['-V']).status === 0

export interface Child {
  process: ChildProcess
  url: string
  stop (): Promise<void>
}

/** A free loopback port: bind 0, read it, close. */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Start `node args…` pinned to `core` and wait until `url` answers (bounded). */
export async function startNode (args: string[], url: string, core: number | null, env: NodeJS.ProcessEnv = {}): Promise<Child> {
  const command = HAS_TASKSET && core !== null ? 'taskset' : process.execPath
  const argv = HAS_TASKSET && core !== null ? ['-c', String(core), process.execPath, ...args] : args
  const child = spawn(command, argv, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  return waitFor(child, url, args.join(' '))
}

/**
 * Wait until `url` answers (any status; at most 15 s), then hand `child` back with a `stop` that sends
 * SIGTERM to that one process, and SIGKILL 5 s later if it is still running.
 */
export async function waitFor (child: ChildProcess, url: string, name: string): Promise<Child> {
  const deadline = Date.now() + 15_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`)
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) })
      break
    } catch {
      if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`${url} did not answer within 15 s`) }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  return {
    process: child,
    url,
    stop: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
  }
}

/** Resident set size of a process, in MiB, from /proc. */
export function rssMiB (pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(status)
    return match === null ? null : Number(match[1]) / 1024
  } catch {
    return null
  }
}

/** Keep this process (the load generator) on its own core, away from the proxies'. */
export function pinSelf (core: number): void {
  if (HAS_TASKSET) spawnSync('taskset', ['-p', '-c', String(core), String(process.pid)])
}

/** The benchmark's upstream (upstream.ts) on a free port, pinned to `core`. */
export async function startUpstream (core: number): Promise<Child> {
  const port = await freePort()
  return startNode(['bench-dist/upstream.js', String(port)], `http://127.0.0.1:${port}/`, core)
}

/**
 * scopegate itself (`node [nodeArgs] dist/cli.js serve`) on two free loopback ports, pinned to `core`, its
 * config written to `bench-dist/<name>.json`; ready once `/readyz` answers. `dist`: another build's
 * output folder (relative to the repository), to compare two builds.
 */
export async function startGateway (name: string, config: (port: number, adminPort: number) => unknown, core: number, nodeArgs: string[] = [],
  dist = 'dist'): Promise<Child & { port: number }> {
  const [port, adminPort] = [await freePort(), await freePort()]
  const file = join(ROOT, 'bench-dist', `${name}.json`)
  writeFileSync(file, JSON.stringify(config(port, adminPort)))
  const child = await startNode([...nodeArgs, `${dist}/cli.js`, 'serve', '--config', file], `http://127.0.0.1:${adminPort}/readyz`, core)
  return { ...child, port }
}
