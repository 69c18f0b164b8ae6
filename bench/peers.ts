/**
 * The peer table: scopegate beside what platform teams compare it with, each scenario measured as one
 * group (see `compareAll`), so every ratio in a row comes from the same run under the same host load.
 * The rows: HAProxy 2.6 verifying the JWT itself (`jwt_verify`, haproxy.ts), the no-auth fastify proxy
 * (the baseline), scopegate in proxy mode, and nginx `auth_request` to scopegate's `/decisions` without
 * and with nginx's decision cache (nginx-ingress.ts). A peer whose binary is missing is left out.
 */
import { compareAll, cpuPerRequest, failures, latency, prime, reqPerSec, type LoadShape, type Tally, type Target } from './measure.js'
import { tcpStates, type TcpStates } from './tcp-states.js'

export const HAPROXY = 'HAProxy 2.6, jwt_verify + ACLs'
export const BASELINE = 'fastify + @fastify/http-proxy, no auth'
export const PROXY_MODE = 'scopegate, proxy mode'
export const INGRESS = 'nginx auth_request → scopegate'
export const INGRESS_CACHED = 'nginx auth_request → scopegate, nginx decision cache'

/** The targets of one scenario, by row name; all get the scenario's headers. */
export type PeerTargets = Array<[name: string, target: (headers: () => Record<string, string>) => Target]>

export interface PeerRow { scenario: string, tallies: Tally[] }

export interface GroupOptions { rounds: number, seconds: number, warmup: number, shape: LoadShape }

/**
 * One scenario across the peers. `tokens`: a token set sent once to each target, in order, before the
 * warm-up, so every cache (scopegate's token cache, nginx's decision cache) holds the working set.
 */
export async function peerGroup (scenario: string, peers: PeerTargets, headers: () => Record<string, string>, options: GroupOptions, tokens = 0): Promise<PeerRow> {
  const targets = peers.map(([name, target]) => [name, target(headers)] as const)
  if (tokens > 0) for (const [, target] of targets) await prime(target, tokens, options.shape)
  const tallies = await compareAll(targets, options)
  const row = { scenario, tallies }
  for (const line of peerLines(row)) process.stdout.write(`${line}\n`)
  return row
}

/** One scenario of the table: its headers, and the size of a token set to prime every cache with (0: none). */
export interface PeerScenario { scenario: string, headers: () => Record<string, string>, tokens?: number }

/** TCP connections from nginx to its scopegate, before and after a group: see tcp-states.ts. */
export interface ConnectionCount { scenario: string, before: TcpStates | null, after: TcpStates | null }

/**
 * Every scenario as a group, in turn; with the ingress rows (`ingressAdminPort` not null), the
 * connections nginx holds to scopegate are counted around each group.
 */
export async function peerTableRun (peers: PeerTargets, scenarios: readonly PeerScenario[], options: GroupOptions, ingressAdminPort: number | null): Promise<{ rows: PeerRow[], connections: ConnectionCount[] }> {
  const rows: PeerRow[] = []
  const connections: ConnectionCount[] = []
  for (const { scenario, headers, tokens } of scenarios) {
    const before = ingressAdminPort === null ? null : tcpStates(ingressAdminPort)
    rows.push(await peerGroup(scenario, peers, headers, options, tokens))
    const after = ingressAdminPort === null ? null : tcpStates(ingressAdminPort)
    if (before !== null && after !== null) {
      connections.push({ scenario, before, after })
      process.stdout.write(`  nginx → scopegate connections: ${after.established} open; TIME-WAIT ${before.timeWait} before the group, ${after.timeWait} after\n`)
    }
  }
  return { rows, connections }
}

/** How many of 100 hot-token requests through each ingress row scopegate decided itself: all, or (cached) none. */
export async function showCacheHits (peers: PeerTargets, metricsUrl: string, headers: () => Record<string, string>): Promise<void> {
  for (const [name, target] of peers.filter(([n]) => n === INGRESS || n === INGRESS_CACHED)) {
    const before = await decisionsMade(metricsUrl)
    const { url } = target(headers)
    for (let i = 0; i < 100; i++) await fetch(url, { headers: headers(), signal: AbortSignal.timeout(5000) }).then(async (r) => await r.arrayBuffer())
    process.stdout.write(`${name}: 100 hot-token requests, ${await decisionsMade(metricsUrl) - before} decided by scopegate\n`)
  }
}

const ratioTo = (row: PeerRow, tally: Tally, name: string): string => {
  const reference = row.tallies.find((t) => t.name === name)
  return reference === undefined ? '-' : (reqPerSec(tally) / reqPerSec(reference)).toFixed(2)
}

const cpu = (tally: Tally): string => { const c = cpuPerRequest(tally); return c === null ? '-' : c.toFixed(0) }

/**
 * Before anything is measured, every row must answer as the bench policy says: 200 for a good token, 401
 * for a spoiled one and for none (the baseline, which has no auth: 200 for all). A row that refused
 * everything would otherwise look fast.
 */
export async function checkPeers (peers: PeerTargets, good: string, spoiled: string): Promise<void> {
  for (const [name, target] of peers) {
    const refused = name === BASELINE ? 200 : 401
    for (const [label, authorization, expected] of [['a good token', `Bearer ${good}`, 200], ['a spoiled token', `Bearer ${spoiled}`, refused], ['no token', undefined, refused]] as const) {
      const { url } = target(() => ({}))
      const headers: Record<string, string> = authorization === undefined ? {} : { authorization }
      const res = await fetch(url, { headers, signal: AbortSignal.timeout(5000) })
      await res.arrayBuffer()
      if (res.status !== expected) throw new Error(`${name}: ${label} got ${res.status}, not ${expected}`)
    }
  }
}

/**
 * Decisions scopegate made (the sum of its `scopegate_requests_total`), read from its /metrics: to show
 * that the cached ingress row is answered by nginx's cache, not by scopegate.
 */
export async function decisionsMade (metricsUrl: string): Promise<number> {
  const text = await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) }).then(async (r) => await r.text())
  return text.split('\n').filter((l) => l.startsWith('scopegate_requests_total{')).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
}

/** A group as printed while the run goes on. */
function peerLines (row: PeerRow): string[] {
  return [`${row.scenario}:`, ...row.tallies.map((t) =>
    `  ${t.name.padEnd(54)} ${reqPerSec(t).toFixed(0).padStart(6)} req/s  ${cpu(t).padStart(4)} µs CPU/req  p50 ${latency(t, 'p50').toFixed(1)} ms  p99 ${latency(t, 'p99').toFixed(1)} ms  ` +
    `× HAProxy ${ratioTo(row, t, HAPROXY)}  × baseline ${ratioTo(row, t, BASELINE)}  non-2xx ${t.slices.reduce((n, s) => n + s.non2xx, 0)}  errors ${t.slices.reduce((n, s) => n + s.errors, 0)}`)]
}

/** The peer table in Markdown: req/s, p50/p99 and the ratios to HAProxy and to the baseline, per scenario. */
export function peerTable (rows: readonly PeerRow[]): string[] {
  return [
    '| scenario | row | req/s | µs CPU/req | p50 ms | p99 ms | × HAProxy | × baseline | non-2xx + errors |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.flatMap((row) => row.tallies.map((t) =>
      `| ${row.scenario} | ${t.name} | ${reqPerSec(t).toFixed(0)} | ${cpu(t)} | ${latency(t, 'p50').toFixed(1)} | ${latency(t, 'p99').toFixed(1)} | ` +
      `${ratioTo(row, t, HAPROXY)} | ${ratioTo(row, t, BASELINE)} | ${failures(t)} |`))
  ]
}
