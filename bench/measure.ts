/**
 * Paired measurement for a noisy, shared host: two targets are loaded in alternating slices (ABBA), so
 * whatever else runs on the machine falls on both alike, and each slice also records the proxy
 * process's own CPU time from /proc. Ratios of req/s and of CPU per request are what the benchmarks
 * report; raw req/s move with the host.
 */
import autocannon from 'autocannon'
import { cpuSeconds } from './proc-cpu.js'

export interface Slice {
  requests: number
  seconds: number
  non2xx: number
  errors: number
  p50: number
  p99: number
  cpuSeconds: number | null
  /** CPU seconds of each process serving the target, `pid` first then `otherPids`: who costs what in the ingress rows. */
  cpuByProcess?: Array<number | null>
}

/** One side of a comparison: the slices measured for it, summed at the end. */
export interface Tally { name: string, slices: Slice[] }

export interface Target {
  url: string
  headers: () => Record<string, string>
  /** The process whose CPU time is charged to this target. */
  pid: number | undefined
  /** Other processes serving this target (nginx beside its scopegate): their CPU time is charged too. */
  otherPids?: number[]
}

export interface LoadShape {
  connections: number
  /** Requests per second per connection; unset: as fast as the target answers. */
  connectionRate?: number
}

/** CPU seconds of every process serving `target`, or null when one cannot be read. */
function targetCpuSeconds (target: Target): number | null {
  let total = 0
  for (const pid of [target.pid, ...(target.otherPids ?? [])]) {
    const seconds = cpuSeconds(pid)
    if (seconds === null) return null
    total += seconds
  }
  return total
}

export async function load (target: Target, seconds: number, shape: LoadShape): Promise<Slice> {
  const pids = [target.pid, ...(target.otherPids ?? [])]
  const eachBefore = pids.map(cpuSeconds)
  const cpuBefore = targetCpuSeconds(target)
  const result = await autocannon({
    url: target.url,
    connections: shape.connections,
    duration: seconds,
    ...(shape.connectionRate === undefined ? {} : { connectionRate: shape.connectionRate }),
    requests: [{ setupRequest: (request: autocannon.Request) => ({ ...request, headers: { ...request.headers, ...target.headers() } }) }]
  })
  const cpuAfter = targetCpuSeconds(target)
  const eachAfter = pids.map(cpuSeconds)
  return {
    requests: result.requests.total,
    seconds: result.duration,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuSeconds: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore,
    cpuByProcess: eachAfter.map((after, i) => { const before = eachBefore[i]; return after === null || before === null || before === undefined ? null : after - before })
  }
}

/** Send exactly `amount` requests (each header set once, in order): primes a cache with a token set. */
export async function prime (target: Target, amount: number, shape: LoadShape): Promise<void> {
  await autocannon({
    url: target.url,
    connections: shape.connections,
    amount,
    requests: [{ setupRequest: (request: autocannon.Request) => ({ ...request, headers: { ...request.headers, ...target.headers() } }) }]
  })
}

export const reqPerSec = (tally: Tally): number =>
  tally.slices.reduce((n, s) => n + s.requests, 0) / tally.slices.reduce((n, s) => n + s.seconds, 0)

/** Microseconds of the target process's CPU per request, or null without /proc. */
export const cpuPerRequest = (tally: Tally): number | null => tally.slices.some((s) => s.cpuSeconds === null)
  ? null
  : 1e6 * tally.slices.reduce((n, s) => n + (s.cpuSeconds ?? 0), 0) / tally.slices.reduce((n, s) => n + s.requests, 0)

/** Request-weighted mean of the slices' percentile, in ms. */
export const latency = (tally: Tally, key: 'p50' | 'p99'): number =>
  tally.slices.reduce((n, s) => n + s[key] * s.requests, 0) / Math.max(1, tally.slices.reduce((n, s) => n + s.requests, 0))

export const failures = (tally: Tally): number => tally.slices.reduce((n, s) => n + s.non2xx + s.errors, 0)

/** A and B in `rounds` alternating slices of `seconds` each (ABBA order), after a warm-up of each. */
export async function compare (names: [string, string], targets: [Target, Target], options: { rounds: number, seconds: number, warmup: number, shape: LoadShape }): Promise<[Tally, Tally]> {
  const tallies: [Tally, Tally] = [{ name: names[0], slices: [] }, { name: names[1], slices: [] }]
  for (const target of targets) await load(target, options.warmup, options.shape)
  for (let i = 0; i < options.rounds; i++) {
    const order = i % 2 === 0 ? [0, 1] as const : [1, 0] as const
    for (const side of order) {
      const slice = await load(targets[side], options.seconds, options.shape)
      tallies[side].slices.push(slice)
      if (process.env.BENCH_VERBOSE !== undefined) process.stdout.write(`  ${tallies[side].name}: ${slice.requests} requests in ${slice.seconds} s\n`)
    }
  }
  return tallies
}

/**
 * Several targets in `rounds` slices each, the order reversed every other round (ABC CBA ABC …), after a
 * warm-up of each: the ABBA pairing of `compare` stretched to a group, so every ratio within the group is
 * measured under the same host load.
 */
export async function compareAll (targets: ReadonlyArray<readonly [string, Target]>, options: { rounds: number, seconds: number, warmup: number, shape: LoadShape }): Promise<Tally[]> {
  const tallies: Tally[] = targets.map(([name]) => ({ name, slices: [] }))
  for (const [, target] of targets) await load(target, options.warmup, options.shape)
  const forward = targets.map((_, i) => i)
  for (let round = 0; round < options.rounds; round++) {
    for (const side of round % 2 === 0 ? forward : [...forward].reverse()) {
      const entry = targets[side]
      const tally = tallies[side]
      if (entry === undefined || tally === undefined) continue
      const slice = await load(entry[1], options.seconds, options.shape)
      tally.slices.push(slice)
      if (process.env.BENCH_VERBOSE !== undefined) process.stdout.write(`  ${tally.name}: ${slice.requests} requests in ${slice.seconds} s\n`)
    }
  }
  return tallies
}
