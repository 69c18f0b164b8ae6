/**
 * A real nginx (the Debian package), started by a test as a child process on loopback with a config the
 * test writes, and stopped by its own PID. `master_process off` keeps it to that one process, so there
 * are no workers to chase; every path it writes (pid, temp files, cache) is inside the test's directory,
 * so it runs unprivileged, and as root too.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'

export interface Nginx {
  /** The binary found, and its `nginx -V` output (which modules it was built with). */
  binary: string
  version: string
}

export interface RunningNginx {
  pid: number
  /** Everything it wrote to stderr, for failure messages. */
  stderr: () => string
  stop: () => Promise<void>
}

/** The nginx binary, or null when none is installed (CI's `.ci/run` installs nginx-light). */
export function findNginx (): Nginx | null {
  for (const binary of [process.env.NGINX_BIN, 'nginx', '/usr/sbin/nginx'].filter((b): b is string => b !== undefined && b !== '')) {
    const probe = spawnSync(binary, ['-V'], { encoding: 'utf8' })
    if (probe.status === 0) return { binary, version: `${probe.stdout}${probe.stderr}` }
  }
  return null
}

export { freePort } from '../helpers/echo-upstream.js'

/**
 * The `http {}` lines that keep nginx's files in `dir`: temp paths of every module this build has
 * (a module left out of the build would make its directive unknown), and no access log.
 */
export function privatePaths (nginx: Nginx, dir: string): string {
  const lines = ['access_log off;', `client_body_temp_path ${join(dir, 'client_body')};`, `proxy_temp_path ${join(dir, 'proxy')};`]
  for (const module of ['fastcgi', 'uwsgi', 'scgi']) {
    if (!nginx.version.includes(`--without-http_${module}_module`)) lines.push(`${module}_temp_path ${join(dir, module)};`)
  }
  return lines.join('\n  ')
}

function connects (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/**
 * Writes `conf` (the `http {}` block's contents) into `dir/nginx.conf` and runs nginx on it until
 * `port` accepts connections.
 */
export async function startNginx (nginx: Nginx, dir: string, conf: string, port: number): Promise<RunningNginx> {
  const main = [
    'master_process off;',
    // As root, nginx would hand its temp directories to www-data; keep them with the test's own user.
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    'events { worker_connections 64; }',
    `http {\n  ${privatePaths(nginx, dir)}\n${conf}\n}`
  ].join('\n')
  const confPath = join(dir, 'nginx.conf')
  writeFileSync(confPath, main)
  const child: ChildProcess = spawn(nginx.binary, [
    '-p', dir, '-c', confPath, '-e', 'stderr', '-g', `daemon off; pid ${join(dir, 'nginx.pid')}; error_log stderr;`
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8') })
  let exited = false
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve() }))
  child.once('error', (err) => { stderr += String(err) })

  const deadline = Date.now() + 10_000
  while (!(await connects(port))) {
    if (exited) throw new Error(`nginx exited at start-up:\n${stderr}\n--- nginx.conf ---\n${main}`)
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`nginx did not listen on 127.0.0.1:${port} within 10 s:\n${stderr}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const pid = child.pid as number
  return {
    pid,
    stderr: () => stderr,
    stop: async () => {
      if (exited) return
      process.kill(pid, 'SIGTERM') // only the process this test started
      await exit
    }
  }
}
