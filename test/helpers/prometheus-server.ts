/**
 * A real Prometheus (Debian's `prometheus` package) on 127.0.0.1 and a free port, with its own temporary
 * TSDB and a generated config scraping the given targets every few seconds, for tests of what a real
 * scraper makes of scopegate's /metrics and of the alerting rules and dashboard queries. Asked through
 * its HTTP API (`/api/v1/...`). Stopped by its PID; `stop` is safe to call twice and removes its folder.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { freePort } from './echo-upstream.js'
import { send } from './http.js'

/** Debian's packages (`.ci/run` installs them), found on the PATH. */
export const PROMETHEUS = 'prometheus'
export const PROMTOOL = 'promtool'

/**
 * Seconds between scrapes and between rule evaluations, and the scrape timeout (at most the interval):
 * long enough for a group of workers to answer a scrape on a loaded machine (the primary asks each,
 * and waits up to 2 s for their answers).
 */
export const SCRAPE_INTERVAL_S = 3

/** What the query API answers: `status` and either `data` or `errorType`/`error`. */
export interface ApiAnswer<T> {
  status: 'success' | 'error'
  data: T
  errorType?: string
  error?: string
}

/** One element of an instant vector: its labels and `[time, value]`. */
export interface VectorSample { metric: Record<string, string>, value: [number, string] }

export interface ActiveTarget { labels: Record<string, string>, health: 'up' | 'down' | 'unknown', lastError: string, scrapeUrl: string }

export interface TestPrometheus {
  url: string
  /** An instant query; the answer as the API gives it (a PromQL error is `status: 'error'`, not a throw). */
  query: (expr: string) => Promise<ApiAnswer<{ resultType: string, result: VectorSample[] }>>
  /** The active targets of `/api/v1/targets`. */
  targets: () => Promise<ActiveTarget[]>
  /** The rule groups of `/api/v1/rules`. */
  rules: () => Promise<Array<{ name: string, rules: Array<{ name: string, health: string, lastError?: string, type: string }> }>>
  /** Everything Prometheus printed, for a failure's message. */
  output: () => string
  stop: () => Promise<void>
}

export interface PrometheusOptions {
  /** `host:port` of each scopegate admin listener, scraped at /metrics as job `scopegate`. */
  targets: string[]
  /** Rule files to load (absolute paths). */
  ruleFiles?: string[]
}

async function api<T> (base: string, path: string): Promise<ApiAnswer<T>> {
  const res = await send(base, path, { timeoutMs: 5000 })
  if (res.json === undefined) throw new Error(`${path}: ${res.status} ${res.body.slice(0, 200)}`)
  return res.json as ApiAnswer<T>
}

export async function startPrometheus (options: PrometheusOptions): Promise<TestPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-prometheus-'))
  const config = join(dir, 'prometheus.yml')
  await writeFile(config, stringify({
    global: { scrape_interval: `${SCRAPE_INTERVAL_S}s`, scrape_timeout: `${SCRAPE_INTERVAL_S}s`, evaluation_interval: `${SCRAPE_INTERVAL_S}s` },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: [{ job_name: 'scopegate', metrics_path: '/metrics', static_configs: [{ targets: options.targets }] }]
  }))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const child = spawn(PROMETHEUS, [
    `--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
    '--storage.tsdb.retention.time=1h', '--log.level=warn'
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  const chunks: string[] = []
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => chunks.push(chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => chunks.push(chunk))
  const failed: { error?: Error } = {}
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    // Not installed: no exit follows, and the error is the answer.
    child.once('error', (err) => { failed.error = err; resolve() })
  })
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM')
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))])
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }

  // Bounded: 200 tries, 100 ms apart, each request at most 5 s.
  let ready = false
  for (let i = 0; i < 200 && !ready && child.exitCode === null && failed.error === undefined; i++) {
    ready = await send(url, '/-/ready', { timeoutMs: 5000 }).then((res) => res.status === 200, () => false)
    if (!ready) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  if (!ready) {
    await stop()
    throw new Error(`prometheus did not start: ${failed.error?.message ?? ''}\n${chunks.join('')}`)
  }
  return {
    url,
    query: async (expr) => await api(url, `/api/v1/query?query=${encodeURIComponent(expr)}`),
    targets: async () => (await api<{ activeTargets: ActiveTarget[] }>(url, '/api/v1/targets?state=active')).data.activeTargets,
    rules: async () => (await api<{ groups: Array<{ name: string, rules: Array<{ name: string, health: string, lastError?: string, type: string }> }> }>(url, '/api/v1/rules')).data.groups,
    output: () => chunks.join(''),
    stop
  }
}
