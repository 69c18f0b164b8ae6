/**
 * The listeners' protocols under load (docs/tls.md), two scenarios of `npm run bench`, each compared within
 * the same run in alternating slices (ABBA) so a noisy host falls on both sides alike:
 *
 * - TLS termination: the same gateway config served over HTTPS and over plain HTTP, keep-alive (autocannon;
 *   the loader does not verify the certificate, which is made here with openssl for 127.0.0.1);
 * - HTTP/2 multiplexing: one h2c gateway loaded over HTTP/1.1 (autocannon, one request in flight per
 *   connection) and over h2 (a small bounded `node:http2` loader: sessions × concurrent streams).
 *
 * Only ratios are meant to be read: raw req/s move with the host.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import http2 from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { load, type LoadShape, type Slice, type Target } from './measure.js'
import { startGateway, type Child } from './processes.js'

export interface ProtocolRow {
  scenario: string
  /** req/s of the side measured, and of the side it is compared with. */
  measured: number
  against: number
  p99: [number, number]
  failures: [number, number]
}

export interface ProtocolOptions {
  /** The gateway config for a port pair; each scenario lays its listener keys over its `server.proxy`. */
  config: (port: number, adminPort: number) => Record<string, unknown>
  /** The request headers (the hot token). */
  headers: () => Record<string, string>
  core: number
  rounds: number
  seconds: number
  warmup: number
  connections: number
}

/** A self-signed certificate for 127.0.0.1 in a temp dir. */
function selfSigned (): { dir: string, cert: string, key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-bench-tls-'))
  const [cert, key] = [join(dir, 'tls.crt'), join(dir, 'tls.key')]
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore', timeout: 20_000 })
  return { dir, cert, key }
}

const sumRate = (slices: Slice[]): number => slices.reduce((n, s) => n + s.requests, 0) / slices.reduce((n, s) => n + s.seconds, 0)
const meanP99 = (slices: Slice[]): number => slices.reduce((n, s) => n + s.p99 * s.requests, 0) / Math.max(1, slices.reduce((n, s) => n + s.requests, 0))
const failed = (slices: Slice[]): number => slices.reduce((n, s) => n + s.non2xx + s.errors, 0)

/** A then B, then B then A, `rounds` times, after a warm-up of each. */
async function alternate (a: (seconds: number) => Promise<Slice>, b: (seconds: number) => Promise<Slice>, options: ProtocolOptions): Promise<[Slice[], Slice[]]> {
  await a(options.warmup)
  await b(options.warmup)
  const sides: [Slice[], Slice[]] = [[], []]
  for (let i = 0; i < options.rounds; i++) {
    for (const side of i % 2 === 0 ? [0, 1] as const : [1, 0] as const) sides[side].push(await (side === 0 ? a : b)(options.seconds))
  }
  return sides
}

/** `sessions` h2 sessions, each keeping `streams` requests in flight, for `seconds`; bounded by the deadline. */
export async function loadHttp2 (url: string, headers: () => Record<string, string>, seconds: number, shape: { sessions: number, streams: number }): Promise<Slice> {
  const target = new URL(url)
  const latencies: number[] = []
  let non2xx = 0
  let errors = 0
  const deadline = Date.now() + seconds * 1000
  const started = Date.now()
  const runSession = async (): Promise<void> => {
    const session = http2.connect(target.origin)
    session.on('error', () => { errors++ })
    const lane = async (): Promise<void> => {
      while (Date.now() < deadline && !session.destroyed) {
        const sent = process.hrtime.bigint()
        await new Promise<void>((resolve) => {
          const stream = session.request({ ':path': target.pathname + target.search, ...headers() })
          stream.on('response', (h) => { if (Number(h[':status']) >= 400) non2xx++ })
          stream.resume()
          stream.on('end', () => { latencies.push(Number(process.hrtime.bigint() - sent) / 1e6); resolve() })
          stream.on('error', () => { errors++; resolve() })
        })
      }
    }
    await Promise.all(Array.from({ length: shape.streams }, lane))
    session.close()
  }
  await Promise.all(Array.from({ length: shape.sessions }, runSession))
  latencies.sort((x, y) => x - y)
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
  return { requests: latencies.length, seconds: (Date.now() - started) / 1000, non2xx, errors, p50: at(0.5), p99: at(0.99), cpuSeconds: null }
}

function row (scenario: string, [measured, against]: [Slice[], Slice[]]): ProtocolRow {
  return { scenario, measured: sumRate(measured), against: sumRate(against), p99: [meanP99(measured), meanP99(against)], failures: [failed(measured), failed(against)] }
}

/** Runs both scenarios; every gateway started here is stopped before it returns. */
export async function protocolScenarios (options: ProtocolOptions): Promise<ProtocolRow[]> {
  const children: Child[] = []
  const tls = selfSigned()
  try {
    const start = async (name: string, proxy: Record<string, unknown>): Promise<Child & { port: number }> => {
      const gateway = await startGateway(name, (port, adminPort) => {
        const config = options.config(port, adminPort)
        const server = config.server as { proxy: Record<string, unknown> }
        return { ...config, server: { ...server, proxy: { ...server.proxy, ...proxy } } }
      }, options.core)
      children.push(gateway)
      return gateway
    }
    const plain = await start('bench-plain', {})
    const secure = await start('bench-tls', { tls: { cert: tls.cert, key: tls.key } })
    const h2c = await start('bench-h2c', { http2: true })
    const shape: LoadShape = { connections: options.connections }
    const target = (scheme: string, gateway: Child & { port: number }): Target =>
      ({ url: `${scheme}://127.0.0.1:${gateway.port}/api/todos`, headers: options.headers, pid: gateway.process.pid })

    const tlsSides = await alternate((s) => load(target('https', secure), s, shape), (s) => load(target('http', plain), s, shape), options)
    // As many requests in flight over h2 as over HTTP/1.1: 5 sessions × 10 streams against 50 connections.
    const streams = { sessions: 5, streams: Math.max(1, Math.round(options.connections / 5)) }
    const h2Sides = await alternate((s) => loadHttp2(target('http', h2c).url, options.headers, s, streams), (s) => load(target('http', h2c), s, shape), options)
    return [row('TLS (HTTPS keep-alive) vs plain HTTP', tlsSides), row(`h2c, ${streams.sessions} sessions × ${streams.streams} streams vs HTTP/1.1`, h2Sides)]
  } finally {
    for (const child of children.reverse()) await child.stop()
    rmSync(tls.dir, { recursive: true, force: true })
  }
}

/** One line per row: the ratio, then the raw figures it comes from. */
export function formatProtocolRow (r: ProtocolRow): string {
  return `${r.scenario.padEnd(50)} ratio ${(r.measured / r.against).toFixed(2)}  (${r.measured.toFixed(0)} vs ${r.against.toFixed(0)} req/s, ` +
    `p99 ${r.p99[0].toFixed(1)} vs ${r.p99[1].toFixed(1)} ms, failures ${r.failures[0]}/${r.failures[1]})\n`
}
