/**
 * `npm run bench:ext-authz`: the CPU time scopegate spends per ext_authz Check (docs/istio.md), over h2c
 * and over TLS (`server.extAuthz.tls`, an ECDSA P-256 certificate made with openssl for the run), in ABBA
 * pairs as `cpu.ts` measures the proxy: each slice sends the same number of Checks from one @grpc/grpc-js
 * channel (as Envoy multiplexes its Checks on one HTTP/2 connection) with CHECKS_IN_FLIGHT outstanding,
 * and the gateway process's user + system CPU is read from /proc before and after. Both gateways run the
 * bench config with one hot token, so the decision is a cache hit and what differs is the transport.
 *
 * Environment: EXT_AUTHZ_CHECKS (Checks per slice, 20,000), EXT_AUTHZ_ROUNDS (ABBA rounds, 3).
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { benchClaims, benchConfig, LOG_LEVEL } from './config.js'
import { HAS_TASKSET, ROOT, freePort, pinSelf, startGateway, type Child } from './processes.js'
import { startIssuer } from './tokens.js'

const CHECKS = Number(process.env.EXT_AUTHZ_CHECKS ?? 20_000)
const ROUNDS = Number(process.env.EXT_AUTHZ_ROUNDS ?? 3)
const CHECKS_IN_FLIGHT = 50
const PROXY_CORE = 1
const LOAD_CORE = 0
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on Linux). */
const CLK_TCK = 100

type Check = (request: Record<string, unknown>, callback: (err: grpc.ServiceError | null, response: { status?: { code?: number } }) => void) => void
interface Side { name: string, pid: number, check: Check, close: () => void }

function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

/** A server certificate for 127.0.0.1 and its CA, made with openssl in bench-dist/ext-authz-tls. */
function certificates (): { dir: string, ca: string } {
  const dir = join(ROOT, 'bench-dist', 'ext-authz-tls')
  mkdirSync(dir, { recursive: true })
  const openssl = (args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 }) }
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=bench-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'])
  openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=scopegate'])
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-out', 'server.crt', '-days', '1', '-extfile', 'server.ext', '-set_serial', '1'])
  return { dir, ca: readFileSync(join(dir, 'ca.crt'), 'utf8') }
}

function client (address: string, credentials: grpc.ChannelCredentials): { check: Check, close: () => void } {
  const definition = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', { includeDirs: [join(ROOT, 'proto')], keepCase: true, enums: String, defaults: false, oneofs: true })
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { envoy: { service: { auth: { v3: { Authorization: new (a: string, c: grpc.ChannelCredentials) => grpc.Client & { Check: Check } } } } } }
  const stub = new loaded.envoy.service.auth.v3.Authorization(address, credentials)
  return { check: stub.Check.bind(stub), close: () => { stub.close() } }
}

/** Exactly `amount` Checks, CHECKS_IN_FLIGHT at a time; the gateway's CPU µs per Check, and the non-OK count. */
async function slice (side: Side, request: Record<string, unknown>, amount = CHECKS): Promise<{ cpuUs: number, denied: number }> {
  const before = cpuSeconds(side.pid)
  let sent = 0
  let denied = 0
  const lane = async (): Promise<void> => {
    while (sent < amount) {
      sent++
      const code = await new Promise<number>((resolve) => {
        side.check(request, (err, response) => { resolve(err === null ? response.status?.code ?? 0 : -1) })
      })
      if (code !== 0) denied++
    }
  }
  await Promise.all(Array.from({ length: CHECKS_IN_FLIGHT }, lane))
  return { cpuUs: 1e6 * (cpuSeconds(side.pid) - before) / amount, denied }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((x, y) => x - y)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] ?? 0 : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
}

async function main (): Promise<void> {
  pinSelf(LOAD_CORE)
  const children: Child[] = []
  const sides: Side[] = []
  const issuer = await startIssuer()
  // Stopped from outside (a timeout): the gateways are stopped too, never left behind.
  process.once('SIGTERM', () => { void Promise.all(children.map(async (child) => { await child.stop() })).finally(() => process.exit(143)) })
  try {
    const { dir, ca } = certificates()
    const gateway = async (name: string, tls: Record<string, unknown> | null): Promise<Side> => {
      const grpcPort = await freePort()
      const started = await startGateway(`ext-authz-${name}`, (port, adminPort) => {
        const config = benchConfig(issuer.url, 'http://127.0.0.1:9', port, adminPort) as { server: Record<string, unknown> }
        config.server.extAuthz = { host: '127.0.0.1', port: grpcPort, ...(tls === null ? {} : { tls }) }
        return config
      }, PROXY_CORE)
      children.push(started)
      const credentials = tls === null ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(Buffer.from(ca))
      const side = { name, pid: started.process.pid ?? 0, ...client(`127.0.0.1:${grpcPort}`, credentials) }
      sides.push(side)
      return side
    }
    const h2c = await gateway('h2c', null)
    const tls = await gateway('tls', { cert: join(dir, 'server.crt'), key: join(dir, 'server.key') })
    const token = issuer.mint('RS256', benchClaims(0))
    const request = {
      attributes: {
        source: { address: { socket_address: { address: '10.0.0.7', port_value: 51234 } } },
        request: { http: { method: 'GET', path: '/api/todos', host: 'api.bench', scheme: 'https', headers: { authorization: `Bearer ${token}`, 'user-agent': 'bench' } } }
      }
    }
    process.stdout.write(`${new Date().toISOString()}  ${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}, Node ${process.version}, log level ${LOG_LEVEL}, ` +
      `${CHECKS} Checks per slice, ${ROUNDS} ABBA rounds, ${CHECKS_IN_FLIGHT} in flight on one channel, ${HAS_TASKSET ? `gateways on core ${PROXY_CORE}, loader on core ${LOAD_CORE}` : 'unpinned'}\n`)
    await slice(h2c, request, CHECKS / 2)
    await slice(tls, request, CHECKS / 2)
    const results: Record<string, number[]> = { h2c: [], tls: [] }
    let denied = 0
    for (let round = 0; round < ROUNDS; round++) {
      for (const side of round % 2 === 0 ? [tls, h2c] : [h2c, tls]) {
        const result = await slice(side, request)
        results[side.name]?.push(result.cpuUs)
        denied += result.denied
      }
    }
    const ratios = (results.tls ?? []).map((us, i) => us / (results.h2c?.[i] ?? NaN))
    for (const [name, values] of Object.entries(results)) {
      process.stdout.write(`  ${name.padEnd(4)} µs CPU/Check: median ${median(values).toFixed(1)} (slices: ${values.map((v) => v.toFixed(1)).join(' ')})\n`)
    }
    process.stdout.write(`  ratio tls ÷ h2c: median ${median(ratios).toFixed(3)}, spread ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}; Checks not allowed: ${denied}\n`)
  } finally {
    for (const side of sides) side.close()
    for (const child of children) await child.stop()
    await issuer.close()
  }
}

await main()
