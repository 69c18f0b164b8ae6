/**
 * HAProxy as a reference row: Debian's haproxy 2.6 verifying the bench tokens itself with `jwt_verify`
 * against the bench issuer's RS256 public key (a PEM file), with ACLs on `iss`, `aud`, `exp`, the client
 * and the required scope equivalent to the bench policy, and proxying to the same upstream. It has no
 * token cache: every request pays a signature check. One thread, pinned like the other proxies.
 */
import { spawn, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AUD } from './config.js'
import { HAS_TASKSET, ROOT, freePort, waitFor, type Child } from './processes.js'

/** The haproxy binary, or null when it is not installed (the row is then left out). */
export function findHaproxy (): string | null {
  for (const binary of [process.env.HAPROXY_BIN, 'haproxy', '/usr/sbin/haproxy'].filter((b): b is string => b !== undefined && b !== '')) {
    if (spawnSync(binary, ['-v']).status === 0) return binary
  }
  return null
}

const deny = (status: 401 | 403, code: string): string =>
  `http-request return status ${status} content-type application/json string '{"error":"${code}"}' hdr www-authenticate 'Bearer error="${code}"'`

/**
 * The config: the checks in scopegate's order, each a 401 or 403 with scopegate's code. What it does not
 * do: narrowing by roles and client grants (the bench token's roles grant what the scope ACL checks), a
 * token cache, logs or metrics.
 */
export function haproxyConfig (port: number, upstream: URL, issuer: string, publicKeyFile: string): string {
  return [
    'global',
    '  nbthread 1',
    '  maxconn 4096',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    'frontend bench',
    `  bind 127.0.0.1:${port}`,
    '  http-request set-var(txn.bearer) http_auth_bearer',
    `  ${deny(401, 'unauthorized')} unless { var(txn.bearer) -m found }`,
    '  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query(\'$.alg\')',
    '  http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query(\'$.iss\')',
    '  http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query(\'$.aud\')',
    '  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query(\'$.exp\',\'int\')',
    '  http-request set-var(txn.client) var(txn.bearer),jwt_payload_query(\'$.client_id\')',
    '  http-request set-var(txn.scope) var(txn.bearer),jwt_payload_query(\'$.scope\')',
    '  http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query(\'$.sub\')',
    '  http-request set-var(txn.now) date()',
    `  ${deny(401, 'invalid_token')} unless { var(txn.alg) -m str RS256 } { var(txn.bearer),jwt_verify(txn.alg,"${publicKeyFile}") -m int 1 }`,
    `  ${deny(401, 'invalid_token')} unless { var(txn.iss) -m str ${issuer} } { var(txn.exp),sub(txn.now) -m int gt 0 }`,
    `  ${deny(401, 'end_users_not_allowed')} unless { var(txn.aud) -m str ${AUD} }`,
    `  ${deny(401, 'end_users_not_allowed')} if { var(txn.client) -m str CLIENT_ID }`,
    `  ${deny(403, 'insufficient_scope')} unless { var(txn.scope) -m reg (^|\\s)read:todos(\\s|$) }`,
    '  http-request set-header x-auth-subject %[var(txn.sub)]',
    '  http-request set-header x-auth-client-id %[var(txn.client)]',
    '  default_backend upstream',
    'backend upstream',
    '  http-reuse always',
    `  server upstream ${upstream.host}`,
    ''
  ].join('\n')
}

/** HAProxy on a free port, pinned to `core`, in front of `upstream`; ready once it answers. */
export async function startHaproxy (binary: string, upstream: string, issuer: string, publicKeyPem: string, core: number): Promise<Child & { port: number }> {
  const port = await freePort()
  const keyFile = join(ROOT, 'bench-dist', 'haproxy-issuer.pem')
  const configFile = join(ROOT, 'bench-dist', 'haproxy.cfg')
  writeFileSync(keyFile, publicKeyPem)
  writeFileSync(configFile, haproxyConfig(port, new URL(upstream), issuer, keyFile))
  const check = spawnSync(binary, ['-c', '-q', '-f', configFile], { encoding: 'utf8' })
  if (check.status !== 0) throw new Error(`haproxy refused its config:\n${check.stdout}${check.stderr}`)
  const [command, argv] = HAS_TASKSET ? ['taskset', ['-c', String(core), binary]] : [binary, []]
  const child = spawn(command, [...argv, '-db', '-f', configFile], { stdio: ['ignore', 'ignore', 'inherit'] })
  return { ...await waitFor(child, `http://127.0.0.1:${port}/`, 'haproxy'), port }
}
