/**
 * What `forward.authorization: reissue` costs against `keep`: one scopegate process (`node dist/cli.js
 * serve`), one upstream, two routes that differ only in `forward.authorization`, measured in the same run.
 *
 * - hot token: one token repeated, so re-issuing is served from the re-issued token cache (the steady
 *   state of a client reusing its token);
 * - distinct tokens: every request brings a token scopegate has not seen, so both routes verify a
 *   signature on every request and `reissue` also signs one (the cache's worst case).
 *
 * Reports req/s and scopegate's CPU time per request (from /proc, every thread): on a shared host the
 * first moves with whatever else runs, the second much less.
 *
 * Bounded: a 1 s warm-up per route, then BENCH_REISSUE_SECONDS (default and most 3) one-second slices
 * per route and scenario, keep and reissue alternating: 14 s of load, under 20 s in all. Proxy on core 1; autocannon, upstream and JWKS on core 0, where taskset exists.
 * Run with `npm run bench:reissue` (build, `tsc -p bench`, `node bench-dist/reissue.js`).
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { compare, cpuPerRequest, failures, load, reqPerSec, type Tally, type Target } from './measure.js'
import { benchClaims, cycle, gatewayConfig } from './config.js'
import { HAS_TASKSET, ROOT, startGateway } from './processes.js'
import { startIssuerAndUpstream } from './issuer-and-upstream.js'

const SECONDS = Math.min(3, Math.max(1, Math.round(Number(process.env.BENCH_REISSUE_SECONDS ?? 3))))
const WARMUP_S = 1
const CONNECTIONS = 50
const PROXY_CORE = 1
const LOAD_CORE = 0
/** More distinct tokens than any scenario can send, so none repeats. */
const DISTINCT = 6_000

/** keep and reissue in alternating 1 s slices (ABBA), printed as they are measured. */
async function compareRoutes (label: string, keep: Target, reissue: Target): Promise<[Tally, Tally]> {
  const tallies = await compare([`keep, ${label}`, `reissue, ${label}`], [keep, reissue], { rounds: SECONDS, seconds: 1, warmup: 0, shape: { connections: CONNECTIONS } })
  for (const tally of tallies) {
    const p99 = Math.max(...tally.slices.map((s) => s.p99))
    const cpu = cpuPerRequest(tally)
    process.stdout.write(`${tally.name.padEnd(28)} ${reqPerSec(tally).toFixed(0).padStart(7)} req/s  ` +
      `${cpu === null ? '' : `${cpu.toFixed(0).padStart(5)} µs CPU/req  `}worst-slice p99 ${p99} ms  non-2xx or errors ${failures(tally)}\n`)
  }
  return tallies
}

/** Two routes that differ only in `forward.authorization`, with the bench's role grants and a required scope. */
function reissueConfig (issuerUrl: string, upstream: string, port: number, adminPort: number, keyFile: string): Record<string, unknown> {
  const policy = {
    grants: { roles: { admin: ['*'], editor: ['read:todos', 'write:todos'], user: ['read:todos'] } },
    scopes: { require: ['read:todos'] }
  }
  return gatewayConfig(issuerUrl, upstream, port, adminPort, {
    reissue: { issuer: 'https://scopegate.bench', ttl: '60s', algorithm: 'ES256', keys: [{ file: keyFile }] },
    routes: [
      { id: 'keep', match: { path: '/keep', prefix: true }, upstream: 'api', policy, forward: { authorization: 'keep' } },
      { id: 'reissue', match: { path: '/reissue', prefix: true }, upstream: 'api', policy, forward: { authorization: 'reissue' } }
    ]
  })
}

async function main (): Promise<void> {
  const { issuer, upstream, children, stop } = await startIssuerAndUpstream(LOAD_CORE)
  try {
    const dir = join(ROOT, 'bench-dist')
    mkdirSync(dir, { recursive: true })
    const keyFile = join(dir, 'reissue-key.jwk.json')
    writeFileSync(keyFile, JSON.stringify({ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid: 'bench-reissue' }), { mode: 0o600 })
    const gateway = await startGateway('bench-reissue-config', (port, adminPort) => reissueConfig(issuer.url, upstream.url, port, adminPort, keyFile), PROXY_CORE)
    children.push(gateway)
    const gwPort = gateway.port
    const target = (route: 'keep' | 'reissue', headers: () => Record<string, string>): Target =>
      ({ url: `http://127.0.0.1:${gwPort}/${route}/todos`, headers, pid: gateway.process.pid })

    const hot = issuer.mint('ES256', benchClaims(0))
    const hotHeaders = (): Record<string, string> => ({ authorization: `Bearer ${hot}` })
    const distinct = (offset: number): string[] => Array.from({ length: DISTINCT }, (_, i) => issuer.mint('ES256', benchClaims(offset + i)))
    const distinctKeep = cycle(distinct(1))
    const distinctReissue = cycle(distinct(1 + DISTINCT))

    await load(target('keep', hotHeaders), WARMUP_S, { connections: CONNECTIONS })
    await load(target('reissue', hotHeaders), WARMUP_S, { connections: CONNECTIONS })

    const [keepHot, reissueHot] = await compareRoutes('hot token', target('keep', hotHeaders), target('reissue', hotHeaders))
    const [keepDistinct, reissueDistinct] = await compareRoutes('distinct tokens', target('keep', distinctKeep.next), target('reissue', distinctReissue.next))
    const repeated = distinctKeep.used() > DISTINCT || distinctReissue.used() > DISTINCT

    const ratio = (x: Tally, y: Tally): string => (reqPerSec(x) / reqPerSec(y)).toFixed(2)
    const cpuRatio = (x: Tally, y: Tally): string => {
      const [a, b] = [cpuPerRequest(x), cpuPerRequest(y)]
      return a === null || b === null ? 'n/a' : (a / b).toFixed(2)
    }
    process.stdout.write([
      '',
      '                                                        req/s ratio   CPU per request ratio',
      `reissue / keep, hot token (re-issued token cache):     ${ratio(reissueHot, keepHot).padStart(5)}         ${cpuRatio(reissueHot, keepHot)}`,
      `reissue / keep, distinct tokens (one signature each):  ${ratio(reissueDistinct, keepDistinct).padStart(5)}         ${cpuRatio(reissueDistinct, keepDistinct)}` +
        `${repeated ? ' (some tokens repeated)' : ''}`,
      `${CONNECTIONS} connections, ${WARMUP_S} s warm-up per route, ${SECONDS} × 1 s alternating slices per route and scenario, ` +
        `${HAS_TASKSET ? `proxy on core ${PROXY_CORE}, load on core ${LOAD_CORE}` : 'no pinning (taskset not found)'}, Node ${process.version}`,
      ''
    ].join('\n'))
    const all = [keepHot, reissueHot, keepDistinct, reissueDistinct].flatMap((t) => t.slices)
    if (all.some((s) => s.non2xx > 0 || s.errors > 0)) process.exitCode = 1
  } finally {
    await stop()
  }
}

await main()
