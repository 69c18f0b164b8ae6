/**
 * `npm run bench:soak`: scopegate in proxy mode under a steady 1,000 req/s for 30 minutes (`--minutes N`
 * or BENCH_SOAK_MINUTES for a shorter run), while the issuer rotates its signing key (a new kid signs
 * from then on; the old key is withdrawn from the JWKS a while later) and the config is reloaded every
 * minute (SIGHUP). 1% of the requests carry a token whose signature does not verify. Every few seconds it
 * samples the process's RSS and open file descriptors (/proc) and its heap and event-loop delay (its own
 * /metrics); it counts every answer other than the one expected (200, or 401 for a bad token, and no
 * error or timeout). It writes the curves to bench/soak.svg (or `--svg FILE`) and prints a summary: are
 * the curves flat within 5% after the warm-up, and did nothing fail?
 */
import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { benchClaims, benchConfig } from './config.js'
import { ROOT, rssMiB, startGateway, type Child } from './processes.js'
import { lineChart, type Mark, type Series } from './svg-plot.js'
import type { Issuer } from './tokens.js'
import { startIssuerAndUpstream } from './issuer-and-upstream.js'

const { values: flags } = parseArgs({
  options: {
    minutes: { type: 'string', default: process.env.BENCH_SOAK_MINUTES ?? '30' },
    rate: { type: 'string', default: '1000' },
    svg: { type: 'string', default: join(ROOT, 'bench', 'soak.svg') }
  }
})
const MINUTES = Number(flags.minutes)
const RATE = Number(flags.rate)
const CONNECTIONS = 10
/** Seconds between samples. */
const SAMPLE_S = 5
/** Seconds between config reloads. */
const RELOAD_S = 60
const DURATION_S = Math.round(MINUTES * 60)
/** A key rotation every 5 minutes, or three in a short run; the old key withdrawn halfway to the next. */
const ROTATE_S = Math.min(300, Math.max(20, Math.floor(DURATION_S / 3)))
/** File descriptors are few: a change of this many or fewer is flat whatever its percentage. */
const FDS_SLACK = 2
/** What is left out of the flatness check: the first fifth of the run, at least 30 s (JIT, heap growth, caches filling). */
const WARMUP_S = Math.max(30, DURATION_S / 5)
const FLAT = 0.05
const PROXY_CORE = 1
const LOAD_CORE = 0
/** Distinct users per key: a token cache in steady state, far below its 10,000 entries. */
const USERS = 500
const BAD_EVERY = 100

interface Sample { seconds: number, rssMiB: number, heapMiB: number, fds: number, lagP99Ms: number }

/** One Prometheus sample value by metric name and exact label text (`{result="ok"}`, or none), or NaN. */
function metric (text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `))
  return line === undefined ? Number.NaN : Number(line.slice(name.length + labels.length + 1))
}

async function sample (gateway: Child, adminUrl: string, seconds: number): Promise<Sample> {
  const pid = gateway.process.pid ?? 0
  const text = await fetch(adminUrl, { signal: AbortSignal.timeout(2000) }).then(async (r) => await r.text()).catch(() => '')
  let fds = Number.NaN
  try { fds = readdirSync(`/proc/${pid}/fd`).length } catch {}
  return {
    seconds,
    rssMiB: rssMiB(pid) ?? Number.NaN,
    heapMiB: metric(text, 'nodejs_heap_size_used_bytes') / 2 ** 20,
    fds,
    lagP99Ms: metric(text, 'nodejs_eventloop_lag_p99_seconds') * 1000
  }
}

/** The tokens the load sends, re-minted after each rotation with the key that signs now. */
class TokenPool {
  good: string[] = []
  bad: string[] = []
  constructor (private readonly issuer: Issuer) { this.refill() }
  refill (): void {
    this.good = Array.from({ length: USERS }, (_, i) => this.issuer.mint('ES256', benchClaims(i)))
    this.bad = this.good.slice(0, 50).map((t) => `${t.slice(0, -6)}AAAAAA`)
  }
}

/** Mean of the samples' `key` over [from, to) seconds. */
const mean = (samples: readonly Sample[], key: keyof Sample, from: number, to: number): number => {
  const values = samples.filter((s) => s.seconds >= from && s.seconds < to).map((s) => s[key]).filter(Number.isFinite)
  return values.reduce((n, v) => n + v, 0) / Math.max(1, values.length)
}

interface Counts { sent: number, failed: number, bad: number, reloadsOk: number, reloadsFailed: number }

function summary (samples: readonly Sample[], counts: Counts, marks: readonly Mark[]): string[] {
  const third = (DURATION_S - WARMUP_S) / 3
  const lines = [`soak: ${MINUTES} min at ${RATE} req/s (${(counts.sent / DURATION_S).toFixed(0)} reached), ${counts.sent} requests (${counts.bad} with a bad token), ` +
    `${marks.filter((m) => m.label === 'reload').length} reloads, ${marks.filter((m) => m.label !== 'reload').length} key rotations and retirements`]
  let [flat, grew] = [true, false]
  for (const [key, label] of [['rssMiB', 'RSS MiB'], ['heapMiB', 'heap used MiB'], ['fds', 'open fds']] as const) {
    const [early, late] = [mean(samples, key, WARMUP_S, WARMUP_S + third), mean(samples, key, DURATION_S - third, DURATION_S + 1)]
    const change = (late - early) / early
    const ok = Math.abs(change) <= FLAT || (key === 'fds' && Math.abs(late - early) <= FDS_SLACK)
    flat &&= ok
    grew ||= !ok && change > 0
    lines.push(`  ${label.padEnd(14)} after warm-up ${early.toFixed(1)}, last third ${late.toFixed(1)}: ${change >= 0 ? '+' : ''}${(100 * change).toFixed(1)}% ` +
      (ok ? 'flat' : change > 0 ? 'GREW' : 'fell (memory handed back, not a leak)'))
  }
  const lags = samples.filter((s) => s.seconds >= WARMUP_S).map((s) => s.lagP99Ms).filter(Number.isFinite)
  lines.push(`  event-loop delay p99 after warm-up: median ${lags.sort((a, b) => a - b)[Math.floor(lags.length / 2)]?.toFixed(1) ?? '-'} ms, max ${Math.max(...lags).toFixed(1)} ms (not judged: the host is shared)`)
  lines.push(`  config reloads: ${counts.reloadsOk} swapped in, ${counts.reloadsFailed} refused (scopegate's own count)`)
  lines.push(`  failed requests (anything but the expected 200 or 401): ${counts.failed}`)
  if (counts.sent < 0.9 * RATE * DURATION_S) lines.push(`  the rate was not held (${(counts.sent / DURATION_S).toFixed(0)} of ${RATE} req/s): the host is too busy for this run to show what it should`)
  lines.push(`  verdict: ${flat ? 'flat within 5% after warm-up' : grew ? 'GREW by more than 5% after warm-up' : 'no growth after warm-up, but not flat within 5% (a fall)'}, ` +
    `${counts.failed === 0 ? 'zero failures' : `${counts.failed} failures`}`)
  return lines
}

/**
 * The load: RATE req/s for DURATION_S over CONNECTIONS connections, one request in BAD_EVERY with a
 * spoiled token; counts what was sent and every answer but the expected one.
 */
async function steadyLoad (port: number, pool: TokenPool, counts: Counts): Promise<void> {
  let i = 0
  /** Per connection (autocannon's context), the status its request in flight must get. */
  const expected = new WeakMap<object, number>()
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/api/todos`,
    connections: CONNECTIONS,
    connectionRate: RATE / CONNECTIONS,
    duration: DURATION_S,
    requests: [{
      // One request at a time per connection: the expectation set here is the one its response meets.
      setupRequest: (request: autocannon.Request, context: object) => {
        const bad = ++i % BAD_EVERY === 0
        counts.sent++
        if (bad) counts.bad++
        expected.set(context, bad ? 401 : 200)
        const token = bad ? pool.bad[i % pool.bad.length] : pool.good[i % pool.good.length]
        return { ...request, headers: { ...request.headers, authorization: `Bearer ${token ?? ''}` } }
      },
      onResponse: (status: number, _body: string, context: object) => {
        if (status !== expected.get(context)) counts.failed++
      }
    }]
  })
  counts.failed += result.errors + result.timeouts
}

/** The events beside the load: samples every SAMPLE_S, a reload every RELOAD_S, a rotation every ROTATE_S. Returns the stop. */
function schedule (gateway: Child, metricsUrl: string, issuer: Issuer, pool: TokenPool, samples: Sample[], marks: Mark[]): () => void {
  const start = Date.now()
  const at = (): number => (Date.now() - start) / 1000
  const timers = [
    setInterval(() => { void sample(gateway, metricsUrl, at()).then((s) => samples.push(s)) }, SAMPLE_S * 1000),
    setInterval(() => { gateway.process.kill('SIGHUP'); marks.push({ seconds: at(), label: 'reload' }) }, RELOAD_S * 1000),
    setInterval(() => {
      issuer.rotate('ES256')
      pool.refill()
      marks.push({ seconds: at(), label: 'rotate' })
      setTimeout(() => { issuer.retire('ES256'); marks.push({ seconds: at(), label: 'retire' }) }, (ROTATE_S / 2) * 1000).unref()
    }, ROTATE_S * 1000)
  ]
  return () => { for (const timer of timers) clearInterval(timer) }
}

/** The SVG of the samples, and the summary on stdout. */
function report (samples: readonly Sample[], counts: Counts, marks: readonly Mark[]): void {
  const series: Series[] = [
    { name: 'resident set size', unit: 'MiB', points: samples.map((s) => [s.seconds, s.rssMiB]) },
    { name: 'V8 heap used', unit: 'MiB', points: samples.map((s) => [s.seconds, s.heapMiB]) },
    { name: 'open file descriptors', unit: 'count', points: samples.map((s) => [s.seconds, s.fds]) },
    { name: 'event-loop delay p99', unit: 'ms', points: samples.map((s) => [s.seconds, s.lagP99Ms]) }
  ]
  const svg = String(flags.svg)
  writeFileSync(svg, lineChart(`scopegate soak: ${MINUTES} min at ${RATE} req/s, key rotations, a reload a minute, 1% bad tokens`, series, DURATION_S, marks))
  for (const line of summary(samples, counts, marks)) process.stdout.write(`${line}\n`)
  process.stdout.write(`wrote ${svg}\n`)
}

async function main (): Promise<void> {
  const started = Date.now()
  const { issuer, upstream, children, stop } = await startIssuerAndUpstream(LOAD_CORE)
  try {
    // Keys are rechecked every minute and an unknown kid refetched after 1 s, so a rotation is seen at once.
    const config = (port: number, adminPort: number): Record<string, unknown> => {
      const c = benchConfig(issuer.url, upstream.url, port, adminPort)
      const [first] = c.issuers as Array<Record<string, unknown>>
      return { ...c, issuers: [{ ...first, jwks: { refreshInterval: '1m', cooldown: '1s' } }] }
    }
    const gateway = await startGateway('bench-soak-config', config, PROXY_CORE)
    children.push(gateway)
    const metricsUrl = gateway.url.replace(/\/readyz$/, '/metrics')
    const pool = new TokenPool(issuer)
    const counts: Counts = { sent: 0, failed: 0, bad: 0, reloadsOk: 0, reloadsFailed: 0 }
    const samples: Sample[] = [await sample(gateway, metricsUrl, 0)]
    const marks: Mark[] = []
    const stop = schedule(gateway, metricsUrl, issuer, pool, samples, marks)
    await steadyLoad(gateway.port, pool, counts).finally(stop)
    const final = await fetch(metricsUrl).then(async (r) => await r.text()).catch(() => '')
    counts.reloadsOk = metric(final, 'scopegate_config_reloads_total', '{result="ok"}') || 0
    counts.reloadsFailed = metric(final, 'scopegate_config_reloads_total', '{result="error"}') || 0
    // A sample still on its way when the load stopped would show the connections closing: left out.
    report(samples.filter((s) => s.seconds <= DURATION_S), counts, marks)
  } finally {
    await stop()
    process.stdout.write(`total elapsed ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
  }
}

await main()
