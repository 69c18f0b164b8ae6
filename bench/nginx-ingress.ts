/**
 * Ingress mode for the benchmark: a real nginx (Debian's) in front of the upstream, asking a scopegate's
 * `/decisions` with `auth_request` as docs/ingress-nginx.md configures it. Two servers in one nginx
 * process: one asks on every request, the other caches decisions with the shipped
 * `deploy/nginx/scopegate-auth-cache.conf`. One nginx process (`master_process off`), pinned to the proxy
 * core with its scopegate, its files in a temporary directory, stopped by its PID.
 *
 * The `http` block is docs/ingress-nginx.md's "Plain nginx" and "Caching decisions in plain nginx", no
 * more: both upstreams kept alive (`keepalive 64`, HTTP/1.1, empty `Connection`), the auth subrequest
 * without the client's body or headers. What only the bench adds is outside what is measured per request:
 * the process layout (one process, pinned), temp paths, and no access log (HAProxy logs nothing either).
 * The text is `nginx-auth-request-config.ts`, which the tests' nginx uses too.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AUTH_CACHE_CONF, ERROR_MAP, authServer, scopegateUpstream } from './nginx-auth-request-config.js'
import { HAS_TASKSET, freePort, waitFor, type Child } from './processes.js'

export interface Nginx { binary: string, version: string }

/** The nginx binary and its `-V` output, or null when it is not installed (the rows are then left out). */
export function findNginx (): Nginx | null {
  for (const binary of [process.env.NGINX_BIN, 'nginx', '/usr/sbin/nginx'].filter((b): b is string => b !== undefined && b !== '')) {
    const probe = spawnSync(binary, ['-V'], { encoding: 'utf8' })
    if (probe.status === 0) return { binary, version: `${probe.stdout}${probe.stderr}` }
  }
  return null
}

/** The whole nginx.conf: temp paths in `dir` (for every module this build has), no access log. */
function nginxConf (nginx: Nginx, dir: string, ports: { plain: number, cached: number }, upstream: string, admin: string): string {
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .filter((m) => !nginx.version.includes(`--without-http_${m}_module`))
    .map((m) => `  ${m}_temp_path ${join(dir, m)};`)
  return [
    'master_process off;',
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    'worker_rlimit_nofile 8192;',
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    ...temp,
    ERROR_MAP,
    `  proxy_cache_path ${join(dir, 'decisions')} levels=1:2 keys_zone=scopegate_decisions:10m max_size=64m inactive=2m use_temp_path=off;`,
    scopegateUpstream(admin, upstream),
    authServer(ports.plain),
    authServer(ports.cached, `include ${AUTH_CACHE_CONF};`),
    '}',
    ''
  ].join('\n')
}

/** A directory for nginx's files, in memory where /dev/shm exists: the decision cache writes a file per entry. */
function scratchDir (): string {
  return mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'scopegate-bench-nginx-'))
}

/**
 * nginx on two free ports in front of `upstream`, asking the scopegate at `adminUrl` (its admin
 * listener); `plain` asks on every request, `cached` caches decisions. Pinned to `core`.
 */
export async function startNginxIngress (nginx: Nginx, upstream: string, adminUrl: string, core: number): Promise<Child & { plain: number, cached: number }> {
  const ports = { plain: await freePort(), cached: await freePort() }
  const dir = scratchDir()
  const confPath = join(dir, 'nginx.conf')
  writeFileSync(confPath, nginxConf(nginx, dir, ports, upstream, adminUrl))
  const args = ['-p', dir, '-c', confPath, '-e', join(dir, 'error.log'), '-g', `daemon off; pid ${join(dir, 'nginx.pid')}; error_log ${join(dir, 'error.log')} error;`]
  const [command, argv] = HAS_TASKSET ? ['taskset', ['-c', String(core), nginx.binary]] : [nginx.binary, []]
  const child = spawn(command, [...argv, ...args], { stdio: ['ignore', 'ignore', 'inherit'] })
  const running = await waitFor(child, `http://127.0.0.1:${ports.plain}/`, 'nginx')
  return {
    ...running,
    ...ports,
    stop: async () => {
      await running.stop()
      const errors = existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8').trim() : ''
      if (errors !== '') process.stdout.write(`nginx error log:\n${errors.split('\n').slice(-5).join('\n')}\n`)
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
