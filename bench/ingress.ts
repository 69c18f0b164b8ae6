/**
 * `npm run bench:ingress`: the ingress rows of the peer table alone, beside HAProxy, for work on ingress
 * mode (nginx `auth_request` to scopegate's `/decisions`, docs/ingress-nginx.md). The same processes,
 * pinning and grouping as `npm run bench` (peer-processes.ts, peers.ts): HAProxy, then nginx asking on
 * every request, then nginx with the shipped decision cache, each scenario one group of alternating
 * slices (ABC CBA …). Also prints how an ingress row's CPU per request splits between nginx and
 * scopegate. `BENCH_REPEAT=n` runs the table n times, for the spread; `BENCH_ROUNDS`, `BENCH_SLICE_SECONDS`
 * as in run.ts. Prints, and leaves RESULTS.md alone.
 */
import { benchClaims, cycle } from './config.js'
import { load, type Tally, type Target } from './measure.js'
import { startPeers } from './peer-processes.js'
import { HAPROXY, INGRESS, INGRESS_CACHED, checkPeers, peerTable, peerTableRun, showCacheHits, type GroupOptions, type PeerRow } from './peers.js'
import { startIssuerAndUpstream } from './issuer-and-upstream.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4)
const SECONDS = Number(process.env.BENCH_SLICE_SECONDS ?? 2)
const REPEAT = Number(process.env.BENCH_REPEAT ?? 1)
const TOKENS = Number(process.env.BENCH_TOKENS ?? 10_000)
const CONNECTIONS = 50
const PROXY_CORE = 1
const LOAD_CORE = 0

/** µs of CPU per request of each process serving an ingress row: nginx, then scopegate. */
function split (tally: Tally): string {
  const requests = tally.slices.reduce((n, s) => n + s.requests, 0)
  const each = [0, 1].map((i) => tally.slices.reduce((n, s) => n + (s.cpuByProcess?.[i] ?? 0), 0) * 1e6 / Math.max(1, requests))
  return `scopegate ${each[0]?.toFixed(0) ?? '-'} µs + nginx ${each[1]?.toFixed(0) ?? '-'} µs`
}

/** Ratios of an ingress row to HAProxy in one group: req/s, and HAProxy's CPU per request ÷ the row's. */
function ratios (row: PeerRow): string[] {
  const haproxy = row.tallies.find((t) => t.name === HAPROXY)
  const perSec = (t: Tally): number => t.slices.reduce((n, s) => n + s.requests, 0) / t.slices.reduce((n, s) => n + s.seconds, 0)
  const cpu = (t: Tally): number => t.slices.reduce((n, s) => n + (s.cpuSeconds ?? 0), 0) * 1e6 / Math.max(1, t.slices.reduce((n, s) => n + s.requests, 0))
  return row.tallies.filter((t) => t.name !== HAPROXY && haproxy !== undefined).map((t) =>
    `  ${row.scenario} | ${t.name}: ${(perSec(t) / perSec(haproxy as Tally)).toFixed(2)} × HAProxy req/s, ${(cpu(haproxy as Tally) / cpu(t)).toFixed(2)} × HAProxy CPU/req (${cpu(t).toFixed(0)} vs ${cpu(haproxy as Tally).toFixed(0)} µs; ${split(t)})`)
}

async function main (): Promise<void> {
  const { issuer, upstream, children, stop } = await startIssuerAndUpstream(LOAD_CORE, benchClaims(0))
  try {
    const upstreamUrl = upstream.url.replace(/\/$/, '')
    const unused: Target = { url: upstreamUrl, headers: () => ({}), pid: undefined }
    const { peers: all, ingress } = await startPeers(children, { issuer, upstreamUrl, base: unused, gate: () => unused, core: PROXY_CORE })
    const peers = all.filter(([name]) => name === HAPROXY || name === INGRESS || name === INGRESS_CACHED)
    if (ingress === null) throw new Error('nginx is not installed: there are no ingress rows to measure')

    const hot = issuer.mint('RS256', benchClaims(0))
    const pool = Array.from({ length: TOKENS }, (_, i) => issuer.mint('RS256', benchClaims(i)))
    const invalid = Array.from({ length: 1000 }, (_, i) => issuer.mint('RS256', benchClaims(i)).replace(/.{6}$/, 'AAAAAA'))
    const hotHeaders = (): Record<string, string> => ({ authorization: `Bearer ${hot}` })
    await checkPeers(peers, hot, invalid[0] ?? '')
    for (const [, target] of peers) await load(target(hotHeaders), 2, { connections: CONNECTIONS })
    await showCacheHits(peers, ingress.metricsUrl, hotHeaders)

    const group: GroupOptions = { rounds: ROUNDS, seconds: SECONDS, warmup: 1, shape: { connections: CONNECTIONS } }
    for (let run = 1; run <= REPEAT; run++) {
      process.stdout.write(`\nrun ${run} of ${REPEAT}\n`)
      const { rows } = await peerTableRun(peers, [
        { scenario: 'one hot token', headers: hotHeaders },
        { scenario: `${TOKENS.toLocaleString('en')} distinct tokens, RS256`, headers: cycle(pool).next, tokens: pool.length },
        { scenario: 'invalid tokens', headers: cycle(invalid).next }
      ], group, ingress.adminPort)
      process.stdout.write(`\n${peerTable(rows).join('\n')}\n\n${rows.flatMap(ratios).join('\n')}\n`)
    }
  } finally {
    await stop()
  }
}

await main()
