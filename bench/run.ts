/**
 * `npm run bench`: scopegate's cost measured against its own ceiling, a bare @fastify/http-proxy with
 * no auth, in the same run, on the same machine, with the same upstream, so the ratios hold on a noisy
 * host. The proxies run on one core and the load generator (with the upstream and JWKS) on the other,
 * where taskset exists. Writes bench/RESULTS.md.
 */
import { writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { HAS_TASKSET, ROOT, freePort, rssMiB, startNode, type Child } from './processes.js'
import { startIssuer, type Alg, type Issuer } from './tokens.js'

const DURATION_S = Number(process.env.BENCH_DURATION ?? 10)
const WARMUP_S = 2
const CONNECTIONS = 50
const PROXY_CORE = 1
const LOAD_CORE = 0
const AUD = 'https://api.bench'

interface Run { name: string, reqPerSec: number, p50: number, p99: number, non2xx: number, errors: number }

async function load (name: string, url: string, headers: () => Record<string, string>, options: { duration?: number, rate?: number, amount?: number } = {}): Promise<Run> {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    ...(options.amount === undefined ? { duration: options.duration ?? DURATION_S } : { amount: options.amount }),
    ...(options.rate === undefined ? {} : { overallRate: options.rate }),
    requests: [{ setupRequest: (request: autocannon.Request) => ({ ...request, headers: { ...request.headers, ...headers() } }) }]
  })
  return {
    name,
    reqPerSec: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts
  }
}

async function warm (url: string, headers: () => Record<string, string>): Promise<void> {
  await load('warm-up', url, headers, { duration: WARMUP_S })
}

function gatewayConfig (issuer: Issuer, upstream: string, port: number, adminPort: number): string {
  return JSON.stringify({
    server: { proxy: { host: '127.0.0.1', port }, admin: { host: '127.0.0.1', port: adminPort }, logLevel: process.env.BENCH_LOG_LEVEL ?? 'info' },
    issuers: [{ id: 'bench', issuer: issuer.url, jwksUri: issuer.url, algorithms: ['RS256', 'ES256'], audiences: [AUD], claims: { roles: 'https://bench/roles' } }],
    upstreams: { api: { url: upstream } },
    defaults: { policy: { audience: { deny: ['http://todoapi2.api'], denyMissing: true }, clients: { deny: ['CLIENT_ID'] } } },
    routes: [{
      id: 'api',
      match: { path: '/api', prefix: true },
      upstream: 'api',
      policy: {
        grants: {
          roles: { admin: ['*'], editor: ['read:todos', 'write:todos'], user: ['read:todos'] },
          clients: { 'bench-client': ['read:todos', 'write:todos'] }
        },
        scopes: { require: ['read:todos'] }
      }
    }]
  })
}

function claims (i: number): Record<string, unknown> {
  return { sub: `user-${i}`, aud: AUD, client_id: 'bench-client', scope: 'read:todos write:todos delete:todos', 'https://bench/roles': ['editor'] }
}

function cycle (tokens: string[]): () => Record<string, string> {
  let i = 0
  return () => ({ authorization: `Bearer ${tokens[i++ % tokens.length] ?? ''}` })
}

async function main (): Promise<void> {
  if (HAS_TASKSET) {
    // Pin this process (the load generator, the upstream's parent and the JWKS server) to its own core.
    const { spawnSync } = await import('node:child_process')
    spawnSync('taskset', ['-p', '-c', String(LOAD_CORE), String(process.pid)])
  }
  const children: Child[] = []
  const issuer = await startIssuer()
  try {
    const upstreamPort = await freePort()
    const upstream = await startNode(['bench-dist/upstream.js', String(upstreamPort)], `http://127.0.0.1:${upstreamPort}/`, LOAD_CORE)
    children.push(upstream)

    const basePort = await freePort()
    const baseline = await startNode(['bench-dist/baseline.js', upstream.url.replace(/\/$/, ''), String(basePort)], `http://127.0.0.1:${basePort}/`, PROXY_CORE)
    children.push(baseline)

    const [gwPort, adminPort] = [await freePort(), await freePort()]
    const configFile = join(ROOT, 'bench-dist', 'bench-config.json')
    writeFileSync(configFile, gatewayConfig(issuer, upstream.url.replace(/\/$/, ''), gwPort, adminPort))
    const gateway = await startNode(['dist/cli.js', 'serve', '--config', configFile], `http://127.0.0.1:${adminPort}/readyz`, PROXY_CORE)
    children.push(gateway)
    const gw = `http://127.0.0.1:${gwPort}/api/todos`
    const base = `http://127.0.0.1:${basePort}/api/todos`

    const hot = issuer.mint('RS256', claims(0))
    const rs = Array.from({ length: 10_000 }, (_, i) => issuer.mint('RS256', claims(i)))
    const es = Array.from({ length: 10_000 }, (_, i) => issuer.mint('ES256', claims(i)))
    const invalid = Array.from({ length: 1000 }, (_, i) => issuer.mint('RS256', claims(i)).replace(/.{6}$/, 'AAAAAA'))
    const none = (): Record<string, string> => ({})

    const runs: Run[] = []
    const measure = async (name: string, url: string, headers: () => Record<string, string>, options?: { rate?: number }): Promise<Run> => {
      await warm(url, headers)
      const run = await load(name, url, headers, options)
      runs.push(run)
      process.stdout.write(`${name.padEnd(36)} ${run.reqPerSec.toFixed(0).padStart(7)} req/s  p50 ${run.p50} ms  p99 ${run.p99} ms  non2xx ${run.non2xx}  errors ${run.errors}\n`)
      return run
    }

    const baseRun = await measure('baseline (no auth)', base, none)
    const hotRun = await measure('scopegate: one hot token', gw, () => ({ authorization: `Bearer ${hot}` }))
    const rsRun = await measure('scopegate: 10,000 tokens RS256', gw, cycle(rs))
    const esRun = await measure('scopegate: 10,000 tokens ES256', gw, cycle(es))
    const invalidRun = await measure('scopegate: invalid tokens (401)', gw, cycle(invalid))
    const noTokenRun = await measure('scopegate: no token (401)', gw, none)
    const baseFixed = await measure('baseline at 1,000 req/s', base, none, { rate: 1000 })
    const hotFixed = await measure('scopegate hot token at 1,000 req/s', gw, () => ({ authorization: `Bearer ${hot}` }), { rate: 1000 })

    const many = Array.from({ length: 100_000 }, (_, i) => issuer.mint('ES256', claims(i)))
    const rssBefore = rssMiB(gateway.process.pid ?? 0)
    const manyRun = await load('100,000 distinct tokens', gw, cycle(many), { amount: 100_000 })
    const rssAfter = rssMiB(gateway.process.pid ?? 0)
    process.stdout.write(`RSS after 100,000 distinct tokens: ${rssAfter?.toFixed(1)} MiB (before: ${rssBefore?.toFixed(1)} MiB; ${manyRun.non2xx} non-2xx)\n`)

    const ratio = (run: Run): string => (run.reqPerSec / baseRun.reqPerSec).toFixed(2)
    const check = (ok: boolean): string => ok ? 'met' : '**not met**'
    const targets = [
      ['hot token ≥ 0.90 × baseline', ratio(hotRun), check(hotRun.reqPerSec >= 0.9 * baseRun.reqPerSec)],
      ['hot token p99 at 1,000 req/s ≤ baseline + 1 ms', `${hotFixed.p99} ms vs ${baseFixed.p99} ms`, check(hotFixed.p99 <= baseFixed.p99 + 1)],
      ['10,000 RS256 tokens ≥ 0.80 × baseline', ratio(rsRun), check(rsRun.reqPerSec >= 0.8 * baseRun.reqPerSec)],
      ['10,000 ES256 tokens ≥ 0.80 × baseline', ratio(esRun), check(esRun.reqPerSec >= 0.8 * baseRun.reqPerSec)],
      ['invalid tokens ≥ 1.5 × baseline', ratio(invalidRun), check(invalidRun.reqPerSec >= 1.5 * baseRun.reqPerSec)],
      ['RSS ≤ 150 MiB after 100,000 tokens', `${rssAfter?.toFixed(1)} MiB`, check(rssAfter !== null && rssAfter <= 150)]
    ]

    const cpu = cpus()[0]?.model ?? 'unknown'
    const lines = [
      '# Benchmark results',
      '',
      'Produced by `npm run bench` (`tsc -p bench && node bench-dist/run.js`). Raw figures vary from host to host;',
      'the ratios to the baseline, measured in the same run, are what the targets are about.',
      '',
      `- date: ${new Date().toISOString()}`,
      `- machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
      `- pinning: ${HAS_TASKSET ? `proxies on core ${PROXY_CORE}; autocannon, upstream and JWKS on core ${LOAD_CORE} (taskset)` : 'none (taskset not found)'}`,
      `- autocannon: ${CONNECTIONS} connections, ${WARMUP_S} s warm-up then ${DURATION_S} s per scenario`,
      `- scopegate: \`node dist/cli.js serve\`, log level ${process.env.BENCH_LOG_LEVEL ?? 'info'} (one JSON decision line per request, to /dev/null), policy: audience deny + denyMissing, client deny, role and client grants, one required scope`,
      '',
      '## Targets',
      '',
      '| target | measured | |',
      '|---|---|---|',
      ...targets.map(([a, b, c]) => `| ${a} | ${b} | ${c} |`),
      '',
      '## Raw figures',
      '',
      '| scenario | req/s | × baseline | p50 ms | p99 ms | non-2xx | errors |',
      '|---|---:|---:|---:|---:|---:|---:|',
      ...runs.map((r) => `| ${r.name} | ${r.reqPerSec.toFixed(0)} | ${ratio(r)} | ${r.p50} | ${r.p99} | ${r.non2xx} | ${r.errors} |`),
      '',
      `RSS of the scopegate process: ${rssBefore?.toFixed(1)} MiB before and ${rssAfter?.toFixed(1)} MiB after 100,000 distinct ES256 tokens.`,
      ''
    ]
    const notes = process.env.BENCH_NOTES
    if (notes !== undefined) lines.push(notes, '')
    writeFileSync(join(ROOT, 'bench', 'RESULTS.md'), lines.join('\n'))
    process.stdout.write('wrote bench/RESULTS.md\n')
  } finally {
    for (const child of children.reverse()) await child.stop()
    await issuer.close()
  }
}

await main()
