/**
 * `npm run bench:cpu`: the gateway's own CPU time per request, against the bare @fastify/http-proxy
 * baseline, for the paths the performance targets name. Throughput on a shared host is noise; the CPU a
 * process spends per request it served is far steadier, since another tenant's load delays a process but
 * does not make it do more work.
 *
 * Each scenario is measured in ABBA pairs (scopegate, baseline, baseline, scopegate, …), every slice the
 * same number of requests from the same loader at the same concurrency. The CPU time is read from
 * /proc/<pid>/stat (user + system, every thread) of the process and, for `workers: 2`, of its whole
 * process tree (the primary and both workers). The proxies run on one core and the loader, the upstream
 * and the JWKS on the other (taskset), as in `npm run bench`.
 *
 * Environment: CPU_REQUESTS (requests per slice, 20,000), CPU_ROUNDS (ABBA rounds, 3), CPU_ONLY (a
 * comma-separated list of scenario names: hot, 10k, invalid, missing, workers), CPU_AGAINST (the
 * output folder of another build, e.g. `bench-dist/dist-before`, made with `git stash; npm run build;
 * cp -r dist bench-dist/dist-before; git stash pop`: each scenario then pairs this build with that one
 * instead of the baseline, which is how one change's effect is measured), CPU_VS=haproxy (each scenario is
 * paired with HAProxy, `haproxy.ts`, instead of the baseline; the rejection scenarios, invalid and missing,
 * also with the bare-Node floor of `floor.ts`, in the same rounds: scopegate, HAProxy, floor, then back).
 */
import { cpus } from 'node:os'
import autocannon from 'autocannon'
import { benchClaims, benchConfig, cycle, LOG_LEVEL } from './config.js'
import { findHaproxy, startHaproxy } from './haproxy.js'
import { HAS_TASKSET, freePort, startGateway, startNode, type Child } from './processes.js'
import { treeCpuSeconds } from './proc-cpu.js'
import { startIssuerAndUpstream } from './issuer-and-upstream.js'

const REQUESTS = Number(process.env.CPU_REQUESTS ?? 20_000)
const ROUNDS = Number(process.env.CPU_ROUNDS ?? 3)
const ONLY = process.env.CPU_ONLY?.split(',') ?? null
const AGAINST = process.env.CPU_AGAINST
const VS_HAPROXY = process.env.CPU_VS === 'haproxy'
const CONNECTIONS = 50
const PROXY_CORE = 1
const LOAD_CORE = 0

interface Side { name: string, url: string, headers: () => Record<string, string>, pid: number }
interface Slice { cpuUs: number, p99: number, non2xx: number, errors: number }

/** Exactly REQUESTS requests at CONNECTIONS concurrency; the CPU µs per request the side's processes spent on them. */
async function slice (side: Side, amount = REQUESTS): Promise<Slice> {
  const before = treeCpuSeconds(side.pid)
  const result = await autocannon({
    url: side.url,
    connections: CONNECTIONS,
    amount,
    requests: [{ setupRequest: (request: autocannon.Request) => ({ ...request, headers: { ...request.headers, ...side.headers() } }) }]
  })
  const cpu = treeCpuSeconds(side.pid) - before
  return { cpuUs: 1e6 * cpu / Math.max(1, result.requests.total), p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors + result.timeouts }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] ?? 0 : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
}

/**
 * Rounds of `sides` in turn, forward then backward (ABBA for two, ABCCBA for three), after a warm-up slice
 * of each: per-round CPU µs/req of every side, and the ratios of the first side to each other one.
 */
async function compare (label: string, sides: Side[]): Promise<void> {
  for (const side of sides) await slice(side, REQUESTS / 2)
  const slices: Slice[][] = sides.map(() => [])
  for (let round = 0; round < ROUNDS; round++) {
    const order = sides.map((side, i) => [side, i] as const)
    if (round % 2 === 1) order.reverse()
    for (const [side, i] of order) slices[i]?.push(await slice(side))
  }
  const us = (of: Slice[]): string => of.map((s) => s.cpuUs.toFixed(1)).join(' ')
  const lines = sides.map((side, i) => {
    const of = slices[i] ?? []
    return `  ${side.name.padEnd(22)} µs CPU/req: median ${median(of.map((s) => s.cpuUs)).toFixed(1)} (slices: ${us(of)})  p99 ${median(of.map((s) => s.p99)).toFixed(1)} ms  ` +
      `non-2xx ${of.reduce((n, s) => n + s.non2xx, 0)}  errors ${of.reduce((n, s) => n + s.errors, 0)}\n`
  })
  const first = slices[0] ?? []
  const ratios = sides.slice(1).map((side, j) => {
    const ratio = first.map((s, round) => s.cpuUs / (slices[j + 1]?.[round]?.cpuUs ?? NaN))
    return `  ratio ${sides[0]?.name ?? ''} ÷ ${side.name}: median ${median(ratio).toFixed(3)}, spread ${Math.min(...ratio).toFixed(3)}–${Math.max(...ratio).toFixed(3)}\n`
  })
  process.stdout.write(`${label}\n${lines.join('')}${ratios.join('')}`)
}

const pair = async (label: string, a: Side, b: Side): Promise<void> => { await compare(label, [a, b]) }

/** HAProxy pinned like the proxies; throws when it is not installed, since CPU_VS=haproxy asked for it. */
async function startHaproxyPeer (upstream: string, issuer: string, publicKeyPem: string): Promise<Child & { port: number }> {
  const binary = findHaproxy()
  if (binary === null) throw new Error('CPU_VS=haproxy: haproxy is not installed')
  return await startHaproxy(binary, upstream, issuer, publicKeyPem, PROXY_CORE)
}

const wanted = (name: string): boolean => ONLY === null || ONLY.includes(name)

async function main (): Promise<void> {
  const { issuer, upstream, children, stop } = await startIssuerAndUpstream(LOAD_CORE)
  try {
    const basePort = await freePort()
    const baseline = await startNode(['bench-dist/baseline.js', upstream.url.replace(/\/$/, ''), String(basePort)], `http://127.0.0.1:${basePort}/`, PROXY_CORE)
    children.push(baseline)
    const gateway = await startGateway('cpu-config', (port, adminPort) => benchConfig(issuer.url, upstream.url, port, adminPort), PROXY_CORE)
    children.push(gateway)
    process.stdout.write(`${new Date().toISOString()}  ${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}, Node ${process.version}, log level ${LOG_LEVEL}, ` +
      `${REQUESTS} requests per slice, ${ROUNDS} ABBA rounds, ${CONNECTIONS} connections, ${HAS_TASKSET ? `proxies on core ${PROXY_CORE}, loader on core ${LOAD_CORE}` : 'unpinned'}\n`)

    const gate = (name: string, headers: () => Record<string, string>, target: Child & { port: number } = gateway): Side =>
      ({ name, url: `http://127.0.0.1:${target.port}/api/todos`, headers, pid: target.process.pid ?? 0 })
    const haproxy = VS_HAPROXY ? await startHaproxyPeer(upstream.url, issuer.url, issuer.publicKeyPem('RS256')) : null
    if (haproxy !== null) children.push(haproxy)
    const floorPort = await freePort()
    const floor = VS_HAPROXY ? await startNode(['bench-dist/floor.js', String(floorPort)], `http://127.0.0.1:${floorPort}/`, PROXY_CORE) : null
    if (floor !== null) children.push(floor)
    /** The rejection scenarios' sides beyond scopegate's: HAProxy's and the floor's, when CPU_VS=haproxy. */
    const rejecting = (headers: () => Record<string, string>): Side[] => floor === null
      ? [against(headers)]
      : [against(headers), { name: 'bare Node 401 (floor)', url: `http://127.0.0.1:${floorPort}/api/todos`, headers, pid: floor.process.pid ?? 0 }]
    const before = AGAINST === undefined
      ? null
      : await startGateway('cpu-config-against', (port, adminPort) => benchConfig(issuer.url, upstream.url, port, adminPort), PROXY_CORE, [], AGAINST)
    if (before !== null) children.push(before)
    /** What each scenario is paired with: the bare proxy, or the other build given the same headers. */
    const against = (headers: () => Record<string, string>): Side => haproxy !== null
      ? { name: 'haproxy', url: `http://127.0.0.1:${haproxy.port}/api/todos`, headers, pid: haproxy.process.pid ?? 0 }
      : before === null
        ? { name: 'baseline', url: `http://127.0.0.1:${basePort}/api/todos`, headers: () => ({}), pid: baseline.process.pid ?? 0 }
        : gate(AGAINST ?? '', headers, before)
    const hot = issuer.mint('RS256', benchClaims(0))
    const hotHeaders = (): Record<string, string> => ({ authorization: `Bearer ${hot}` })

    if (wanted('hot')) await pair('one hot token', gate('scopegate', hotHeaders), against(hotHeaders))
    if (wanted('10k')) {
      const tokens = cycle(Array.from({ length: 10_000 }, (_, i) => issuer.mint('RS256', benchClaims(i))))
      await slice(gate('prime', tokens.next), 10_000)
      if (before !== null) await slice(gate('prime', tokens.next, before), 10_000)
      await pair('10,000 distinct RS256 tokens', gate('scopegate', tokens.next), against(tokens.next))
    }
    if (wanted('invalid')) {
      const invalid = cycle(Array.from({ length: 1000 }, (_, i) => issuer.mint('RS256', benchClaims(i)).replace(/.{6}$/, 'AAAAAA')))
      await compare('invalid tokens, a bad signature (401)', [gate('scopegate', invalid.next), ...rejecting(invalid.next)])
    }
    if (wanted('missing')) await compare('no token (401)', [gate('scopegate', () => ({})), ...rejecting(() => ({}))])
    if (wanted('workers')) {
      const two = await startGateway('cpu-config-workers', (port, adminPort) => {
        const config = benchConfig(issuer.url, upstream.url, port, adminPort)
        return { ...config, server: { ...(config.server as Record<string, unknown>), workers: 2 } }
      }, PROXY_CORE)
      children.push(two)
      await pair('one hot token, workers: 2 against workers: 1 (both on one core)', gate('workers: 2', hotHeaders, two), gate('workers: 1', hotHeaders))
    }
  } finally {
    await stop()
  }
}

await main()
