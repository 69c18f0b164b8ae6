/**
 * `npm run bench`: scopegate's cost measured against its own ceiling, a bare @fastify/http-proxy with
 * no auth, on the same upstream, in the same run; and beside its peers (peers.ts): HAProxy verifying the
 * JWT itself, and nginx asking scopegate's `/decisions` with and without nginx's decision cache. Each
 * scenario is paired with the baseline in alternating slices (see measure.ts), so the ratios hold on a noisy, shared host. The proxies run on
 * one core and the load generator (with the upstream and JWKS) on the other, where taskset exists.
 * Writes bench/RESULTS.md.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { compare, cpuPerRequest, failures, latency, load, prime, reqPerSec, type LoadShape, type Tally, type Target } from './measure.js'
import { LOG_LEVEL, benchClaims, benchConfig, conditionsConfig, cycle, opaqueBenchConfig, tracingConfig } from './config.js'
import { startOtlpSink } from './otlp-sink.js'
import { startPeers } from './peer-processes.js'
import { BASELINE, HAPROXY, INGRESS, INGRESS_CACHED, PROXY_MODE, checkPeers, peerTable, peerTableRun, showCacheHits, type ConnectionCount, type GroupOptions, type PeerRow, type PeerScenario } from './peers.js'
import { HAS_TASKSET, ROOT, freePort, rssMiB, startGateway, startNode } from './processes.js'
import { startIssuerAndUpstream } from './issuer-and-upstream.js'
import { proofPool } from './dpop-proofs.js'
import { formatProtocolRow, protocolScenarios, type ProtocolRow } from './protocols.js'

/**
 * BENCH_QUICK=1 or `--quick`: the peer table's hot-token and invalid-token groups only, in shorter
 * slices, printed, with RESULTS.md left alone: about two minutes, for use before each landing.
 */
const QUICK = process.env.BENCH_QUICK === '1' || process.argv.includes('--quick')
const SECONDS = Number(process.env.BENCH_SLICE_SECONDS ?? 2)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 2 : 4))
const WARMUP_S = QUICK ? 1 : 2
/** Each process's warm-up before the first scenario, seconds. */
const PROCESS_WARMUP_S = QUICK ? 2 : 5
const CONNECTIONS = 50
const PROXY_CORE = 1
const LOAD_CORE = 0
/** Enough never-seen tokens for the first-sight scenario's warm-up and slices at well over its req/s. */
const FRESH_TOKENS = 4000 * (WARMUP_S + ROUNDS * SECONDS)
/** The fixed-rate latency scenario: 10 connections × 100 req/s. autocannon's overallRate sends each second's budget in a burst, which measures the burst, not the proxy. */
const FIXED_RATE: LoadShape = { connections: 10, connectionRate: 100 }

interface Row { scenario: string, base: Tally, gate: Tally }

async function main (): Promise<void> {
  const started = Date.now()
  const { issuer, upstream, children, stop } = await startIssuerAndUpstream(LOAD_CORE, benchClaims(0))
  try {
    const upstreamUrl = upstream.url.replace(/\/$/, '')

    const basePort = await freePort()
    const baseline = await startNode(['bench-dist/baseline.js', upstreamUrl, String(basePort)], `http://127.0.0.1:${basePort}/`, PROXY_CORE)
    children.push(baseline)

    const gateway = await startGateway('bench-config', (port, adminPort) => benchConfig(issuer.url, upstream.url, port, adminPort), PROXY_CORE)
    children.push(gateway)
    const gwPort = gateway.port

    const none = (): Record<string, string> => ({})
    const base: Target = { url: `http://127.0.0.1:${basePort}/api/todos`, headers: none, pid: baseline.process.pid }
    const gate = (headers: () => Record<string, string>, path = '/api/todos'): Target => ({ url: `http://127.0.0.1:${gwPort}${path}`, headers, pid: gateway.process.pid })

    const hot = issuer.mint('RS256', benchClaims(0))
    // Minted only for the scenarios that use them: tens of thousands of signatures take a quick run's time.
    const rs = Array.from({ length: QUICK ? 0 : 10_000 }, (_, i) => issuer.mint('RS256', benchClaims(i)))
    const es = Array.from({ length: QUICK ? 0 : 10_000 }, (_, i) => issuer.mint('ES256', benchClaims(i)))
    const fresh = Array.from({ length: QUICK ? 0 : FRESH_TOKENS }, (_, i) => issuer.mint('ES256', benchClaims(20_000 + i)))
    const invalid = Array.from({ length: 1000 }, (_, i) => issuer.mint('RS256', benchClaims(i)).replace(/.{6}$/, 'AAAAAA'))

    const { peers, ingress } = await startPeers(children, { issuer, upstreamUrl, base, gate, core: PROXY_CORE })

    const rows: Row[] = []
    /** `tokens`: a token set sent once, in order, before the warm-up, so the slices measure it in steady state. */
    const paired = async (scenario: string, headers: () => Record<string, string>, shape: LoadShape = { connections: CONNECTIONS }, tokens = 0,
      target = gate): Promise<Row> => {
      if (tokens > 0) await prime(target(headers), tokens, shape)
      const [b, g] = await compare(['baseline', scenario], [base, target(headers)], { rounds: ROUNDS, seconds: SECONDS, warmup: WARMUP_S, shape })
      const row = { scenario, base: b, gate: g }
      rows.push(row)
      const cpu = (t: Tally): string => { const c = cpuPerRequest(t); return c === null ? '-' : `${c.toFixed(0)} µs` }
      process.stdout.write(`${scenario.padEnd(34)} ${reqPerSec(g).toFixed(0).padStart(6)} req/s (${(reqPerSec(g) / reqPerSec(b)).toFixed(2)} × baseline ${reqPerSec(b).toFixed(0)})  ` +
        `CPU/req ${cpu(g)} vs ${cpu(b)}  p50 ${latency(g, 'p50').toFixed(1)} vs ${latency(b, 'p50').toFixed(1)} ms  p99 ${latency(g, 'p99').toFixed(1)} vs ${latency(b, 'p99').toFixed(1)} ms  failures ${failures(g)}/${failures(b)}\n`)
      return row
    }

    // Both processes are warmed up before any scenario (JIT, heap sizing, upstream connections), so the
    // first scenario does not pay for a cold process.
    const hotHeaders = (): Record<string, string> => ({ authorization: `Bearer ${hot}` })
    // TLS termination and h2 multiplexing (protocols.ts); BENCH_PROTOCOLS=only runs these alone.
    const protocols = async (): Promise<ProtocolRow[]> => {
      const config = (port: number, adminPort: number): Record<string, unknown> => benchConfig(issuer.url, upstream.url, port, adminPort)
      const headers = (): Record<string, string> => ({ authorization: `Bearer ${hot}` })
      const shape = { core: PROXY_CORE, rounds: ROUNDS, seconds: SECONDS, warmup: WARMUP_S, connections: CONNECTIONS }
      const measured = await protocolScenarios({ config, headers, ...shape })
      for (const row of measured) process.stdout.write(formatProtocolRow(row))
      return measured
    }
    if (process.env.BENCH_PROTOCOLS === 'only') { await protocols(); return }
    await checkPeers(peers, hot, invalid[0] ?? '')
    for (const [, target] of peers) await load(target(hotHeaders), PROCESS_WARMUP_S, { connections: CONNECTIONS })
    if (ingress !== null) await showCacheHits(peers, ingress.metricsUrl, hotHeaders)

    // The peer table: each scenario one group, every ratio measured in it.
    const group: GroupOptions = { rounds: ROUNDS, seconds: SECONDS, warmup: WARMUP_S, shape: { connections: CONNECTIONS } }
    const scenarios: PeerScenario[] = [
      { scenario: 'one hot token', headers: hotHeaders },
      ...(QUICK ? [] : [{ scenario: '10,000 distinct tokens, RS256', headers: cycle(rs).next, tokens: rs.length }]),
      { scenario: 'invalid tokens', headers: cycle(invalid).next }
    ]
    const { rows: peerRows, connections } = await peerTableRun(peers, scenarios, group, ingress?.adminPort ?? null)
    if (QUICK) {
      process.stdout.write(`\n${peerTable(peerRows).join('\n')}\n`)
      return
    }

    const hotRow = await paired('one hot token', hotHeaders)
    // Tracing on, every request sampled and exported to a local sink: its cost against the hot token above.
    // BENCH_ONLY=tracing runs this pair alone.
    const sink = await startOtlpSink()
    const traced = await startGateway('bench-tracing', (port, adminPort) => tracingConfig(issuer.url, upstream.url, port, adminPort, sink.url), PROXY_CORE)
    children.push(traced)
    const tracedTarget = (headers: () => Record<string, string>): Target => ({ url: `http://127.0.0.1:${traced.port}/api/todos`, headers, pid: traced.process.pid })
    await load(tracedTarget(() => ({ authorization: `Bearer ${hot}` })), PROCESS_WARMUP_S, { connections: CONNECTIONS })
    const tracedRow = await paired('one hot token, tracing on (all sampled)', hotHeaders, undefined, 0, tracedTarget)
    process.stdout.write(`tracing on / off, hot token: ${(reqPerSec(tracedRow.gate) / reqPerSec(hotRow.gate)).toFixed(2)} (${sink.requests()} OTLP requests exported)\n`)
    sink.close()
    if (process.env.BENCH_ONLY === 'tracing') return

    // A route with two conditions, one on the token (remembered per cached token) and one on the request
    // (CEL, every request): what they add to the hot token's cost. A gateway of its own (see conditionsConfig).
    const withConditions = await startGateway('bench-conditions', (port, adminPort) => conditionsConfig(issuer.url, upstream.url, port, adminPort), PROXY_CORE)
    children.push(withConditions)
    const conditionsTarget = (headers: () => Record<string, string>): Target => ({ url: `http://127.0.0.1:${withConditions.port}/api/todos`, headers, pid: withConditions.process.pid })
    await load(conditionsTarget(hotHeaders), PROCESS_WARMUP_S, { connections: CONNECTIONS })
    await paired('one hot token, a route with two conditions', hotHeaders, undefined, 0, conditionsTarget)
    const rsRow = await paired('10,000 distinct tokens, RS256', cycle(rs).next, undefined, rs.length)
    const esRow = await paired('10,000 distinct tokens, ES256', cycle(es).next, undefined, es.length)
    // A DPoP-bound token, cached like the hot token, with a new proof on every request: each pays the
    // proof's ES256 signature check with a key imported from its header, two SHA-256 (ath, thumbprint),
    // one URL parse (htu) and an insertion in the memory replay store. Proofs are made just before the
    // scenario (well within dpop.proofLifetime) and never repeat; a run that outgrows the pool would count
    // replays as failures.
    const proofs = proofPool()
    const bound = issuer.mint('ES256', { ...benchClaims(0), cnf: { jkt: proofs.jkt } })
    const pool = proofs.make(`http://127.0.0.1:${gwPort}/api/todos`, bound, FRESH_TOKENS)
    let proofIndex = 0
    await paired('a DPoP-bound token, a proof per request', () => ({ authorization: `DPoP ${bound}`, dpop: pool[proofIndex++] ?? '' }))
    await paired('10,000 tokens, rate-limited route', cycle(es).next, undefined, es.length, (headers) => gate(headers, '/limited/todos'))
    // A second gateway, its issuer introspecting opaque tokens: one hot opaque token is a cache hit after
    // the first request, which should cost what a JWT cache hit costs (the hot JWT on the same gateway beside it).
    const opaqueGateway = await startGateway('bench-opaque-config', (port, adminPort) => opaqueBenchConfig(issuer.url, upstream.url, port, adminPort), PROXY_CORE)
    children.push(opaqueGateway)
    const opaque = (headers: () => Record<string, string>): Target => ({ url: `http://127.0.0.1:${opaqueGateway.port}/api/todos`, headers, pid: opaqueGateway.process.pid })
    const hotOpaque = `opaque-${randomUUID()}`
    await load(opaque(() => ({ authorization: `Bearer ${hotOpaque}` })), PROCESS_WARMUP_S, { connections: CONNECTIONS })
    const opaqueRow = await paired('one hot opaque token (introspected)', () => ({ authorization: `Bearer ${hotOpaque}` }), undefined, 0, opaque)
    const opaqueJwtRow = await paired('one hot token, introspecting gateway', () => ({ authorization: `Bearer ${hot}` }), undefined, 0, opaque)
    process.stdout.write(`hot opaque token / hot JWT on the same gateway: ${(reqPerSec(opaqueRow.gate) / reqPerSec(opaqueJwtRow.gate)).toFixed(2)}\n`)
    // Never a token seen before: every request pays a signature check and a cache insertion (no target).
    await paired('a new ES256 token on every request', cycle(fresh).next)
    const invalidRow = await paired('invalid tokens (401, no upstream)', cycle(invalid).next)
    await paired('no token (401, no upstream)', none)
    const fixedRow = await paired('one hot token at 1,000 req/s', () => ({ authorization: `Bearer ${hot}` }), FIXED_RATE)

    const protocolRows = await protocols()
    const many = Array.from({ length: 100_000 }, (_, i) => issuer.mint('ES256', benchClaims(i)))
    const rssBefore = rssMiB(gateway.process.pid ?? 0)
    let sent = 0
    const manyTarget = gate(() => ({ authorization: `Bearer ${many[sent++ % many.length] ?? ''}` }))
    const deadline = Date.now() + 120_000
    while (sent < many.length && Date.now() < deadline) await load(manyTarget, 5, { connections: CONNECTIONS })
    const rssAfter = rssMiB(gateway.process.pid ?? 0)
    const baseRss = rssMiB(baseline.process.pid ?? 0)
    process.stdout.write(`RSS after ${Math.min(sent, many.length)} distinct tokens: ${rssAfter?.toFixed(1)} MiB (before: ${rssBefore?.toFixed(1)} MiB; baseline process: ${baseRss?.toFixed(1)} MiB)\n`)

    const ratio = (row: Row): number => reqPerSec(row.gate) / reqPerSec(row.base)
    const cpuRatio = (row: Row): string => {
      const [g, b] = [cpuPerRequest(row.gate), cpuPerRequest(row.base)]
      return g === null || b === null ? '-' : (b / g).toFixed(2)
    }
    const check = (ok: boolean): string => ok ? 'met' : '**not met**'
    const p99Gate = latency(fixedRow.gate, 'p99')
    const p99Base = latency(fixedRow.base, 'p99')
    const targets: Array<[string, string, string]> = [
      ['hot token ≥ 0.90 × baseline req/s', `${ratio(hotRow).toFixed(2)} (CPU: ${cpuRatio(hotRow)})`, check(ratio(hotRow) >= 0.9)],
      ['hot token p99 at 1,000 req/s ≤ baseline + 1 ms', `${p99Gate.toFixed(1)} ms vs ${p99Base.toFixed(1)} ms`, check(p99Gate <= p99Base + 1)],
      ['hot opaque token ≥ 0.90 × hot JWT (same gateway)', `${(reqPerSec(opaqueRow.gate) / reqPerSec(opaqueJwtRow.gate)).toFixed(2)} (CPU: ${cpuRatio(opaqueRow)} vs ${cpuRatio(opaqueJwtRow)})`,
        check(reqPerSec(opaqueRow.gate) >= 0.9 * reqPerSec(opaqueJwtRow.gate))],
      ['10,000 RS256 tokens ≥ 0.80 × baseline', `${ratio(rsRow).toFixed(2)} (CPU: ${cpuRatio(rsRow)})`, check(ratio(rsRow) >= 0.8)],
      ['10,000 ES256 tokens ≥ 0.80 × baseline', `${ratio(esRow).toFixed(2)} (CPU: ${cpuRatio(esRow)})`, check(ratio(esRow) >= 0.8)],
      ['invalid tokens ≥ 1.5 × baseline', `${ratio(invalidRow).toFixed(2)} (CPU: ${cpuRatio(invalidRow)})`, check(ratio(invalidRow) >= 1.5)],
      ['RSS ≤ 150 MiB after 100,000 distinct tokens', `${rssAfter?.toFixed(1)} MiB`, check(rssAfter !== null && rssAfter <= 150)]
    ]

    const cpu = (t: Tally): string => { const c = cpuPerRequest(t); return c === null ? '-' : c.toFixed(0) }
    const lines = [
      '# Benchmark results',
      '',
      'Produced by `npm run bench` (build, `tsc -p bench/tsconfig.json`, `node bench-dist/run.js`). Each scenario is',
      `paired with the baseline in ${ROUNDS} alternating ${SECONDS} s slices (ABBA) after a ${WARMUP_S} s warm-up of each, so both`,
      'see the same host load; the ratios are what the targets are about. "CPU" is the ratio of the proxy',
      'processes\' own CPU time per request (baseline ÷ scopegate, from /proc): what the ratio would be if the',
      'proxy core were the only limit. Raw req/s move with the host.',
      '',
      `Before the first scenario each process is warmed up for ${PROCESS_WARMUP_S} s. In the 10,000-token scenarios each token is`,
      'sent once before the warm-up, so the slices measure a 10,000-token working set in steady state; the cost of',
      'a token never seen before (signature check and cache insertion) is its own row, "a new ES256 token on',
      'every request", which has no target.',
      '',
      `- date: ${new Date().toISOString()}`,
      `- machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
      `- pinning: ${HAS_TASKSET ? `both proxies on core ${PROXY_CORE}; autocannon, upstream and JWKS on core ${LOAD_CORE} (taskset)` : 'none (taskset not found)'}`,
      `- load: autocannon, ${CONNECTIONS} connections; the fixed-rate scenario uses ${FIXED_RATE.connections} connections × ${FIXED_RATE.connectionRate} req/s`,
      '- baseline: fastify 5 + @fastify/http-proxy, no auth, no logging',
      `- scopegate: \`node dist/cli.js serve\`, log level ${LOG_LEVEL}${LOG_LEVEL === 'info' ? ' (one JSON decision line per request, to /dev/null)' : ''}, metrics on; policy: audience deny + denyMissing, client deny, role and client grants, one required scope`,
      '',
      ...peerSection(peerRows, connections),
      '## Targets',
      '',
      '| target | measured | |',
      '|---|---|---|',
      ...targets.map(([a, b, c]) => `| ${a} | ${b} | ${c} |`),
      '',
      '## Raw figures',
      '',
      '| scenario | scopegate req/s | baseline req/s | ratio | scopegate µs CPU/req | baseline µs CPU/req | p50 ms (sg / base) | p99 ms (sg / base) | failures (sg / base) |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...rows.map((r) => `| ${r.scenario} | ${reqPerSec(r.gate).toFixed(0)} | ${reqPerSec(r.base).toFixed(0)} | ${ratio(r).toFixed(2)} | ${cpu(r.gate)} | ${cpu(r.base)} | ` +
        `${latency(r.gate, 'p50').toFixed(1)} / ${latency(r.base, 'p50').toFixed(1)} | ${latency(r.gate, 'p99').toFixed(1)} / ${latency(r.base, 'p99').toFixed(1)} | ${failures(r.gate)} / ${failures(r.base)} |`),
      '',
      'Failures on the 401 scenarios are the expected 401 answers.',
      '',
      '## Listener protocols (docs/tls.md)',
      '',
      ...protocolRows.map((r) => `- ${formatProtocolRow(r).trim()}`),
      '',
      `RSS of the scopegate process: ${rssBefore?.toFixed(1)} MiB before and ${rssAfter?.toFixed(1)} MiB after ${Math.min(sent, many.length)} distinct ES256 tokens ` +
        `(the baseline proxy process: ${baseRss?.toFixed(1)} MiB).`,
      ''
    ]
    lines.push(notesAfterRun())
    writeFileSync(join(ROOT, 'bench', 'RESULTS.md'), lines.join('\n'))
    process.stdout.write('wrote bench/RESULTS.md\n')
  } finally {
    await stop()
    process.stdout.write(`total elapsed: ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
  }
}

/** Where the notes of earlier runs and engineers begin in bench/RESULTS.md: a run keeps them. */
const NOTES_HEADING = '\n## Notes from earlier runs'

/**
 * What follows this run's figures in bench/RESULTS.md: the file BENCH_NOTES_FILE names, or else the notes
 * already there (from NOTES_HEADING on), so a run replaces its own tables and nothing else.
 */
function notesAfterRun (): string {
  const notesFile = process.env.BENCH_NOTES_FILE
  if (notesFile !== undefined) return readFileSync(notesFile, 'utf8')
  const path = join(ROOT, 'bench', 'RESULTS.md')
  const current = existsSync(path) ? readFileSync(path, 'utf8') : ''
  const at = current.indexOf(NOTES_HEADING)
  return at === -1 ? '' : current.slice(at + 1)
}

/** The RESULTS.md section of the peer table, with what each row is and the connections nginx used. */
function peerSection (rows: readonly PeerRow[], connections: readonly ConnectionCount[]): string[] {
  return [
    '## Beside its peers',
    '',
    'Each scenario is one group: every row below is loaded in the same alternating slices (ABC… then …CBA),',
    'so the ratios in a scenario are measured under the same host load. All proxies run on the proxy core;',
    'in the ingress rows nginx and its scopegate share it. "µs CPU/req" is the CPU time of the processes serving',
    'the row (both, for the ingress rows) per request: on a host shared with other work, two processes get a larger',
    'share of the core than one, which favours the ingress rows in req/s but not in CPU per request.',
    '',
    `- ${HAPROXY}: Debian's haproxy, one thread, \`jwt_verify\` with the issuer's RS256 public key as a PEM file, ACLs on`,
    '  `iss`, `aud`, `exp`, `client_id` and the required scope (`bench/haproxy.ts`); no token cache, no narrowing, no logs.',
    `- ${BASELINE}: the no-auth ceiling, as above.`,
    `- ${PROXY_MODE}: \`node dist/cli.js serve\` with the bench policy, as above.`,
    `- ${INGRESS}: nginx (one process) proxying to the upstream, asking a scopegate's \`/decisions\` on every request`,
    '  (the configuration of docs/ingress-nginx.md, kept-alive connections both ways; `bench/nginx-ingress.ts`).',
    `- ${INGRESS_CACHED}: the same with \`deploy/nginx/scopegate-auth-cache.conf\` included: allows reused for their`,
    '  `s-maxage` (60 s), and denials the cache key alone decides (a bad signature among them) for `forwardAuth.denialCache` (5 s): the invalid-token row',
    '  is asked once per token and lifetime (docs/forward-auth.md, "Caching decisions").',
    '',
    ...peerTable(rows),
    '',
    'Connections from nginx to scopegate (from /proc/net/tcp: open at the end of the group; TIME-WAIT, which',
    'lasts 60 s, before and after it). A denial that made nginx close its connection would leave one',
    'TIME-WAIT per denied request:',
    '',
    ...connections.map((c) => `- ${c.scenario}: ${c.after?.established ?? '-'} open; TIME-WAIT ${c.before?.timeWait ?? '-'} → ${c.after?.timeWait ?? '-'}`),
    ''
  ]
}

await main()
