/**
 * `npm run bench:ops`: operations under load, bounded to about 20 s. While autocannon drives scopegate
 * (`node dist/cli.js serve`, a child process) with a valid token, the config is reloaded twice (SIGHUP,
 * then a change of the file) and the process is sent SIGTERM. It reports every failed request; the
 * target is 0: no request fails across the reloads, and every request under way at SIGTERM completes
 * with 2xx. What follows SIGTERM by design is reported apart: connections refused once the listener is
 * closed, and requests written onto a keep-alive connection as scopegate closed it.
 *
 *   node bench-dist/ops-load.js [--workers N] [--connections N]
 *
 * Exit code 0 when the target is met, 1 when not.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import { ROOT, freePort } from './processes.js'

const { values: flags } = parseArgs({ options: { workers: { type: 'string', default: '1' }, connections: { type: 'string', default: '50' } } })
const WORKERS = Number(flags.workers)
const CONNECTIONS = Number(flags.connections)
/** Seconds, from the start of the load. */
const DURATION_S = 12
const SIGHUP_AT_S = 3
const FILE_RELOAD_AT_S = 6
const SIGTERM_AT_S = 9
/** Milliseconds the upstream takes per request, so that many requests are under way at SIGTERM. */
const UPSTREAM_DELAY_MS = 20
const AUD = 'https://api.ops'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function listen (server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** The upstream: answers after UPSTREAM_DELAY_MS, and counts what it received. */
async function startUpstream (): Promise<{ url: string, received: () => number, close: () => Promise<void> }> {
  let received = 0
  const server = createServer((req, res) => {
    received++
    req.resume()
    setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n'), UPSTREAM_DELAY_MS)
  })
  const url = await listen(server)
  return { url, received: () => received, close: async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => resolve())) } }
}

/** A JWKS endpoint with one ES256 key, and a token it signed. */
async function startIssuer (): Promise<{ issuer: string, jwksUri: string, token: string, fetches: () => number, close: () => Promise<void> }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256')
  const jwk = { ...(await exportJWK(publicKey)), kid: 'ops', alg: 'ES256', use: 'sig' }
  let fetches = 0
  const server = createServer((_req, res) => {
    fetches++
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }))
  })
  const issuer = await listen(server)
  const token = await new SignJWT({ scope: 'read', client_id: 'ops' })
    .setProtectedHeader({ alg: 'ES256', kid: 'ops' }).setIssuer(issuer).setAudience(AUD).setSubject('load')
    .setIssuedAt().setExpirationTime('1h').sign(privateKey)
  return { issuer, jwksUri: `${issuer}/jwks.json`, token, fetches: () => fetches, close: async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => resolve())) } }
}

function configText (ports: { proxy: number, admin: number }, issuer: { issuer: string, jwksUri: string }, upstream: string, generation: number): string {
  // JSON is YAML: the file stays readable without a YAML writer here.
  return JSON.stringify({
    server: { proxy: { host: '127.0.0.1', port: ports.proxy }, admin: { host: '127.0.0.1', port: ports.admin }, workers: WORKERS, shutdownTimeout: '10s', logLevel: 'info' },
    issuers: [{ id: 'ops', issuer: issuer.issuer, jwksUri: issuer.jwksUri, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { app: { url: upstream } },
    // Each generation adds a route, so each reload really changes the config.
    routes: [
      { id: 'app', match: { path: '/app', prefix: true }, upstream: 'app', policy: { scopes: { require: ['read'] } } },
      ...Array.from({ length: generation }, (_, i) => ({ id: `extra-${i}`, match: { path: `/extra-${i}` }, upstream: 'app' }))
    ]
  }, null, 2)
}

interface Outcome { sentAt: number, at: number, status: number | null, error: string | null }

async function main (): Promise<number> {
  const upstream = await startUpstream()
  const issuer = await startIssuer()
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-ops-load-'))
  const file = join(dir, 'scopegate.yaml')
  const ports = { proxy: await freePort(), admin: await freePort() }
  const write = (generation: number): void => {
    writeFileSync(`${file}.tmp`, configText(ports, issuer, upstream.url, generation))
    renameSync(`${file}.tmp`, file)
  }
  write(0)

  const child = spawn(process.execPath, [join(ROOT, 'dist/cli.js'), 'serve', '--config', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: Array<Record<string, unknown>> = []
  let partial = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n')
    partial = parts.pop() ?? ''
    // Only the reload lines are kept: decision lines (one per request) are not parsed.
    for (const line of parts) if (line.includes('"config reload')) lines.push(JSON.parse(line) as Record<string, unknown>)
  })
  const exited = new Promise<{ code: number | null, at: number }>((resolve) => child.once('exit', (code) => resolve({ code, at: Date.now() })))
  const cleanup = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGKILL')
    await Promise.all([upstream.close(), issuer.close()])
    rmSync(dir, { recursive: true, force: true })
  }

  try {
    const startDeadline = Date.now() + 30_000
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${ports.admin}/readyz`, { signal: AbortSignal.timeout(1000) })).status === 200) break
      } catch { /* not yet */ }
      if (child.exitCode !== null || Date.now() > startDeadline) throw new Error('scopegate did not become ready within 30 s')
      await sleep(100)
    }

    const outcomes: Outcome[] = []
    const started = Date.now()
    const at = (s: number): number => started + s * 1000
    const run = autocannon({
      url: `http://127.0.0.1:${ports.proxy}/app/items`,
      connections: CONNECTIONS,
      duration: DURATION_S,
      timeout: 15,
      headers: { authorization: `Bearer ${issuer.token}` },
      // One request at a time per connection (no pipelining): its send time is known when it ends.
      setupClient: (client) => {
        // autocannon's Client emits these; its type declarations list only some of them.
        const events = client as unknown as NodeJS.EventEmitter
        let sentAt = Date.now()
        events.on('request', () => { sentAt = Date.now() })
        events.on('response', (status: number) => { outcomes.push({ sentAt, at: Date.now(), status, error: null }) })
        events.on('connError', (err: NodeJS.ErrnoException) => { outcomes.push({ sentAt, at: Date.now(), status: null, error: err.code ?? err.message }) })
        events.on('timeout', () => { outcomes.push({ sentAt, at: Date.now(), status: null, error: 'timeout' }) })
      }
    })

    await sleep(at(SIGHUP_AT_S) - Date.now())
    child.kill('SIGHUP')
    await sleep(at(FILE_RELOAD_AT_S) - Date.now())
    write(1)
    await sleep(at(SIGTERM_AT_S) - Date.now())
    // Let the second reload land first (the file watcher debounces for 200 ms), then stop.
    const sigtermAt = Date.now()
    child.kill('SIGTERM')
    const result = await run
    const exit = await Promise.race([exited, sleep(15_000).then(() => ({ code: null, at: Date.now() }))])

    const ok = (o: Outcome): boolean => o.status !== null && o.status >= 200 && o.status < 300
    const before = outcomes.filter((o) => o.at < sigtermAt)
    const inFlight = outcomes.filter((o) => o.sentAt < sigtermAt && o.at >= sigtermAt)
    const after = outcomes.filter((o) => o.sentAt >= sigtermAt)
    const failedBefore = before.filter((o) => !ok(o))
    const failedInFlight = inFlight.filter((o) => !ok(o))
    const refused = after.filter((o) => o.error === 'ECONNREFUSED').length
    const closedOnIdle = after.filter((o) => o.error !== null && o.error !== 'ECONNREFUSED').length
    const answeredAfter = after.filter(ok).length
    const otherAfter = after.filter((o) => o.status !== null && !ok(o)).length
    const answered2xx = outcomes.filter(ok).length
    // One line per reload: the process's own, or the cluster primary's (each worker logs its own too).
    const reloads = lines.filter((l) => l.worker === undefined || l.worker === 'primary')
    const failures = failedBefore.length + failedInFlight.length + otherAfter

    const report = [
      `scopegate ops load: ${CONNECTIONS} connections for ${DURATION_S} s, workers ${WORKERS}, upstream ${UPSTREAM_DELAY_MS} ms, one ES256 token`,
      `  reloads: ${reloads.map((l) => `${String(l.trigger)} ${l.msg === 'config reloaded' ? 'ok' : 'FAILED'}`).join(', ') || 'none logged'} (SIGHUP at ${SIGHUP_AT_S} s, file change at ${FILE_RELOAD_AT_S} s); JWKS fetches: ${issuer.fetches()}`,
      `  SIGTERM at ${SIGTERM_AT_S} s: exit code ${String(exit.code)} after ${exit.at - sigtermAt} ms`,
      `  requests: ${outcomes.length} ended, responses and errors (autocannon: ${result.requests.total} responses, ${Math.round(result.requests.average)} req/s average, p99 ${result.latency.p99} ms)`,
      `  answered 2xx: ${answered2xx}; the upstream received ${upstream.received()}`,
      `  FAILED: ${failures} (target 0)`,
      `    non-2xx or error before SIGTERM (across both reloads): ${failedBefore.length}`,
      `    under way at SIGTERM and not answered 2xx: ${failedInFlight.length} of ${inFlight.length}`,
      `    non-2xx answers after SIGTERM: ${otherAfter}`,
      '  expected after SIGTERM, reported apart:',
      `    answered 2xx on a connection still open (with Connection: close): ${answeredAfter}`,
      `    connection refused (listener closed): ${refused}`,
      `    written onto a keep-alive connection as scopegate closed it (never received): ${closedOnIdle}`
    ]
    process.stdout.write(report.join('\n') + '\n')
    const met = failures === 0 && exit.code === 0 && reloads.length === 2 && reloads.every((l) => l.msg === 'config reloaded')
    process.stdout.write(met ? 'target met\n' : 'target NOT met\n')
    return met ? 0 : 1
  } finally {
    await cleanup()
  }
}

main().then((code) => { process.exitCode = code }, (err: unknown) => {
  process.stderr.write(`ops-load: ${(err as Error).message}\n`)
  process.exitCode = 1
})
