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
 * comma-separated list of scenario names: hot, 10k, invalid, missing, workers, and scaling and
 * scaling-rate, which run only when named: see `scaling` below; CPU_RATE, CPU_SCRAPES), CPU_AGAINST (the
 * output folder of another build, e.g. `bench-dist/dist-before`, made with `git stash; npm run build;
 * cp -r dist bench-dist/dist-before; git stash pop`: each scenario then pairs this build with that one
 * instead of the baseline, which is how one change's effect is measured), CPU_VS=haproxy (each scenario is
 * paired with HAProxy, `haproxy.ts`, instead of the baseline; the rejection scenarios, invalid and missing,
 * also with the bare-Node floor of `floor.ts`, in the same rounds: scopegate, HAProxy, floor, then back).
 */
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { cpus } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { benchClaims, benchConfig, cycle, LOG_LEVEL } from './config.js'
import { findHaproxy, startHaproxy } from './haproxy.js'
import { HAS_TASKSET, ROOT, freePort, startGateway, startNode, waitFor, type Child } from './processes.js'
import { cpuSeconds, treeCpuSeconds } from './proc-cpu.js'
import { startIssuerAndUpstream } from './issuer-and-upstream.js'

const REQUESTS = Number(process.env.CPU_REQUESTS ?? 20_000)
const ROUNDS = Number(process.env.CPU_ROUNDS ?? 3)
const ONLY = process.env.CPU_ONLY?.split(',') ?? null
const AGAINST = process.env.CPU_AGAINST
const VS_HAPROXY = process.env.CPU_VS === 'haproxy'
const CONNECTIONS = 50
const PROXY_CORE = 1
const LOAD_CORE = 0

interface Side {
  name: string
  url: string
  headers: () => Record<string, string>
  pid: number
  /** Further autocannon options for this side alone (CPU_ONLY=scaling: its own fixed rate). */
  load?: Partial<autocannon.Options>
}
interface Slice { cpuUs: number, p99: number, non2xx: number, errors: number, ownCpuUs: number, rps: number }

/** CPU seconds used by `pid` alone (a cluster's primary without its workers). */
const ownCpuSeconds = (pid: number): number => cpuSeconds(pid) ?? 0

/**
 * Exactly REQUESTS requests at CONNECTIONS concurrency; the CPU µs per request the side's processes spent
 * on them (and the side's own process: a cluster's primary). `load`: further autocannon options (a fixed
 * rate, a new connection per request).
 */
async function slice (side: Side, amount = REQUESTS, load: Partial<autocannon.Options> = {}): Promise<Slice> {
  const [before, ownBefore] = [treeCpuSeconds(side.pid), ownCpuSeconds(side.pid)]
  const result = await autocannon({
    url: side.url,
    connections: CONNECTIONS,
    amount,
    ...load,
    ...side.load,
    requests: [{ setupRequest: (request: autocannon.Request) => ({ ...request, headers: { ...request.headers, ...side.headers() } }) }]
  })
  const [cpu, own, served] = [treeCpuSeconds(side.pid) - before, ownCpuSeconds(side.pid) - ownBefore, Math.max(1, result.requests.total)]
  return {
    cpuUs: 1e6 * cpu / served,
    ownCpuUs: 1e6 * own / served,
    rps: result.requests.average,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts
  }
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
async function compare (label: string, sides: Side[], load: Partial<autocannon.Options> = {}, amount = REQUESTS): Promise<Slice[][]> {
  for (const side of sides) await slice(side, amount / 2, load)
  const slices: Slice[][] = sides.map(() => [])
  for (let round = 0; round < ROUNDS; round++) {
    const order = sides.map((side, i) => [side, i] as const)
    if (round % 2 === 1) order.reverse()
    for (const [side, i] of order) slices[i]?.push(await slice(side, amount, load))
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
  return slices
}

/** ABBA rounds of `a` against `b`: their slices. */
async function pair (label: string, a: Side, b: Side, load: Partial<autocannon.Options> = {}, amount = REQUESTS): Promise<[Slice[], Slice[]]> {
  const [as = [], bs = []] = await compare(label, [a, b], load, amount)
  return [as, bs]
}

/** HAProxy pinned like the proxies; throws when it is not installed, since CPU_VS=haproxy asked for it. */
async function startHaproxyPeer (upstream: string, issuer: string, publicKeyPem: string): Promise<Child & { port: number }> {
  const binary = findHaproxy()
  if (binary === null) throw new Error('CPU_VS=haproxy: haproxy is not installed')
  return await startHaproxy(binary, upstream, issuer, publicKeyPem, PROXY_CORE)
}

/** Requests per second each gateway process serves in CPU_ONLY=scaling's fixed-rate slices: well below one core's saturation. */
const RATE = Number(process.env.CPU_RATE ?? 250)
/** /metrics scrapes per measurement of CPU_ONLY=scaling. */
const SCRAPES = Number(process.env.CPU_SCRAPES ?? 200)

interface ScalingSetup { issuerUrl: string, upstreamUrl: string, headers: () => Record<string, string>, children: Child[] }
type Started = Child & { port: number, adminPort: number }

/**
 * CPU_ONLY=scaling: what a second worker costs (bench/RESULTS.md, "Scaling"). A 2-core host cannot give
 * the loader, the upstream and two workers a core each, so both configs get the same one: `workers: 1`
 * and `workers: 2` (the primary and both workers) on core 1, the loader and the upstream on core 0.
 * - CPU per request of the whole process tree with each gateway process serving the same fixed rate,
 *   well below saturation (`workers: 2` at 2 × CPU_RATE, `workers: 1` at CPU_RATE), keep-alive: what N
 *   workers on N cores do, each serving its share; ABBA rounds;
 * - the primary's own CPU in those slices (it has no per-request work on a kept-alive connection);
 * - a new connection per request: the primary's own CPU is then its hand-off, per connection;
 * - CPU per /metrics scrape, the primary's and the tree's (the group's aggregation), against one process;
 * - bytes of log per request (the decision line), read from a gateway's stdout.
 * CPU_ONLY=scaling-rate: the same total rate for both (each worker then serves half of what the one
 * process does), and both saturated, with their throughput.
 */
async function scaling (setup: ScalingSetup, variant: 'scaling' | 'scaling-rate'): Promise<void> {
  const start = async (name: string, workers: number): Promise<Started> => {
    let adminPort = 0
    const child = await startGateway(name, (port, admin) => {
      adminPort = admin
      const config = benchConfig(setup.issuerUrl, setup.upstreamUrl, port, admin)
      return { ...config, server: { ...(config.server as Record<string, unknown>), workers } }
    }, PROXY_CORE)
    setup.children.push(child)
    return { ...child, adminPort }
  }
  const two = await start('cpu-scaling-2', 2)
  const one = await start('cpu-scaling-1', 1)
  const side = (name: string, target: Started, rate?: number): Side =>
    ({ name, url: `http://127.0.0.1:${target.port}/api/todos`, headers: setup.headers, pid: target.process.pid ?? 0, ...(rate === undefined ? {} : { load: { overallRate: rate } }) })
  const us = (slices: Slice[], pick: (slice: Slice) => number): string => median(slices.map(pick)).toFixed(1)
  if (variant === 'scaling-rate') {
    await pair(`hot token, ${RATE} req/s for both, keep-alive: workers: 2 against workers: 1, both on core ${PROXY_CORE}`, side('workers: 2', two, RATE), side('workers: 1', one, RATE))
    const [twoFull, oneFull] = await pair('hot token, saturated (no rate), both on one core', side('workers: 2', two), side('workers: 1', one))
    process.stdout.write(`  req/s: workers: 2 ${us(twoFull, (s) => s.rps)}, workers: 1 ${us(oneFull, (s) => s.rps)}\n`)
    return
  }
  const [kept] = await pair(`hot token, ${RATE} req/s per gateway process, keep-alive: workers: 2 (at ${2 * RATE} req/s) against workers: 1 (at ${RATE}), both on core ${PROXY_CORE}`,
    side('workers: 2', two, 2 * RATE), side('workers: 1', one, RATE))
  const ownUs = median(kept.map((s) => s.ownCpuUs))
  process.stdout.write(`  the primary alone: ${ownUs.toFixed(1)} µs CPU per request, ${(ownUs * 2 * RATE / 1000).toFixed(1)} ms CPU per second\n`)
  await freshConnections(side('workers: 2', two), side('workers: 1', one))
  for (const [name, target] of [['workers: 2', two], ['workers: 1', one]] as const) await scrapeCost(name, target)
  process.stdout.write(`log: ${(await logBytesPerRequest(setup)).toFixed(0)} bytes of stdout per allowed request (log level ${LOG_LEVEL})\n`)
}

/**
 * A new connection per request (autocannon does not count requests with `reconnectRate: 1`, hence a loop of
 * node:http requests without an agent, 10 at a time), ABBA: the tree's CPU per request, and the primary's
 * own, which is then its hand-off of each connection to a worker.
 */
async function freshConnections (a: Side, b: Side): Promise<void> {
  const amount = REQUESTS / 4
  const run = async (side: Side): Promise<Slice> => {
    const [tree, own] = [treeCpuSeconds(side.pid), ownCpuSeconds(side.pid)]
    let [next, failed] = [0, 0]
    const one = (): Promise<void> => new Promise((resolve) => {
      const req = request(side.url, { agent: false, headers: { ...side.headers(), connection: 'close' }, timeout: 10_000 }, (res) => {
        if (res.statusCode !== 200) failed++
        res.resume().on('end', resolve)
      })
      req.on('timeout', () => { req.destroy(new Error('timed out')) })
      req.on('error', () => { failed++; resolve() })
      req.end()
    })
    await Promise.all(Array.from({ length: 10 }, async () => { while (next++ < amount) await one() }))
    const cpuUs = (seconds: number): number => 1e6 * seconds / amount
    return { cpuUs: cpuUs(treeCpuSeconds(side.pid) - tree), ownCpuUs: cpuUs(ownCpuSeconds(side.pid) - own), rps: 0, p99: 0, non2xx: failed, errors: 0 }
  }
  await run(a)
  await run(b)
  const [as, bs]: [Slice[], Slice[]] = [[], []]
  for (let round = 0; round < ROUNDS; round++) {
    const order: Array<[Side, Slice[]]> = round % 2 === 0 ? [[a, as], [b, bs]] : [[b, bs], [a, as]]
    for (const [side, into] of order) into.push(await run(side))
  }
  const ratios = as.map((s, i) => s.cpuUs / (bs[i]?.cpuUs ?? NaN))
  const list = (slices: Slice[], pick: (slice: Slice) => number): string => slices.map((slice) => pick(slice).toFixed(1)).join(' ')
  process.stdout.write(`hot token, a new connection per request (${amount} per slice, 10 at a time)\n` +
    `  ${a.name} µs CPU/req: ${list(as, (s) => s.cpuUs)}; the primary alone (its hand-off): ${list(as, (s) => s.ownCpuUs)}; failed ${as.reduce((n, s) => n + s.non2xx, 0)}\n` +
    `  ${b.name} µs CPU/req: ${list(bs, (s) => s.cpuUs)}; failed ${bs.reduce((n, s) => n + s.non2xx, 0)}\n` +
    `  ratio: median ${median(ratios).toFixed(3)}, spread ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}\n`)
}

/** CPU per /metrics scrape on `target`'s admin listener: the whole tree's, and the process's own (a primary's). */
async function scrapeCost (name: string, target: Started): Promise<void> {
  const pid = target.process.pid ?? 0
  const [tree, own] = [treeCpuSeconds(pid), ownCpuSeconds(pid)]
  let [bytes, series] = [0, 0]
  for (let i = 0; i < SCRAPES; i++) {
    const text = await (await fetch(`http://127.0.0.1:${target.adminPort}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
    bytes = text.length
    series = text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length
  }
  const per = (seconds: number): string => (1e6 * seconds / SCRAPES).toFixed(0)
  process.stdout.write(`/metrics, ${name}: ${per(treeCpuSeconds(pid) - tree)} µs CPU per scrape (the process itself: ${per(ownCpuSeconds(pid) - own)} µs), ` +
    `${bytes} bytes, ${series} samples, ${SCRAPES} scrapes\n`)
}

/** Bytes written to stdout per allowed request by a one-process gateway (the decision lines), over 2,000 requests. */
async function logBytesPerRequest (setup: ScalingSetup): Promise<number> {
  const [port, adminPort] = [await freePort(), await freePort()]
  const file = join(ROOT, 'bench-dist', 'cpu-scaling-log.json')
  writeFileSync(file, JSON.stringify(benchConfig(setup.issuerUrl, setup.upstreamUrl, port, adminPort)))
  const child = spawn(process.execPath, ['dist/cli.js', 'serve', '--config', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  let bytes = 0
  child.stdout.on('data', (chunk: Buffer) => { bytes += chunk.length })
  const gateway = await waitFor(child, `http://127.0.0.1:${adminPort}/readyz`, 'the log gateway')
  setup.children.push(gateway)
  const amount = 2000
  await slice({ name: 'log', url: `http://127.0.0.1:${port}/api/todos`, headers: setup.headers, pid: child.pid ?? 0 }, amount)
  const before = bytes
  await slice({ name: 'log', url: `http://127.0.0.1:${port}/api/todos`, headers: setup.headers, pid: child.pid ?? 0 }, amount)
  // Lines are written in batches (src/observability/line-batch.ts): give the last one time to land.
  await new Promise((resolve) => setTimeout(resolve, 1000))
  return (bytes - before) / amount
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
    for (const variant of ['scaling', 'scaling-rate'] as const) {
      if (ONLY?.includes(variant) === true) await scaling({ issuerUrl: issuer.url, upstreamUrl: upstream.url, headers: hotHeaders, children }, variant)
    }
  } finally {
    await stop()
  }
}

await main()
