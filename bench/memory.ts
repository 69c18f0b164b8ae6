/**
 * `npm run bench:memory`: the gateway's resident set size while it sees a great many distinct valid
 * tokens (1,000,000 by default), every one verified, cached and proxied. Every cache the request path fills
 * is bounded (bench/RESULTS.md lists them), so the RSS must level off, whatever the count.
 *
 * Tokens are ES256 (a signature costs the bench about 30 µs, so a million is well under a minute of the
 * loader's core), minted in batches just before they are sent, so the loader's own memory stays small.
 * The gateway runs on one core and the loader, the upstream and the JWKS on the other (taskset). The RSS
 * (/proc/<pid>/status) is sampled after every batch; the curve is printed as it goes.
 *
 * Environment: MEMORY_TOKENS (1,000,000), MEMORY_BATCH (tokens per batch and sample, 25,000),
 * MEMORY_CONNECTIONS (50).
 */
import { cpus } from 'node:os'
import autocannon from 'autocannon'
import { benchClaims, benchConfig, LOG_LEVEL } from './config.js'
import { cpuSeconds } from './proc-cpu.js'
import { HAS_TASKSET, rssMiB, startGateway } from './processes.js'
import { startIssuerAndUpstream } from './issuer-and-upstream.js'

const TOTAL = Number(process.env.MEMORY_TOKENS ?? 1_000_000)
const BATCH = Number(process.env.MEMORY_BATCH ?? 25_000)
const CONNECTIONS = Number(process.env.MEMORY_CONNECTIONS ?? 50)
const PROXY_CORE = 1
const LOAD_CORE = 0
/** The target: RSS after 1,000,000 distinct tokens, MiB. */
const TARGET_MIB = 200

async function main (): Promise<void> {
  const { issuer, upstream, children, stop } = await startIssuerAndUpstream(LOAD_CORE)
  try {
    const gateway = await startGateway('memory-config', (port, adminPort) => benchConfig(issuer.url, upstream.url, port, adminPort), PROXY_CORE)
    children.push(gateway)
    const pid = gateway.process.pid ?? 0
    process.stdout.write(`${new Date().toISOString()}  ${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}, Node ${process.version}, log level ${LOG_LEVEL}, ` +
      `${TOTAL} distinct ES256 tokens in batches of ${BATCH}, ${CONNECTIONS} connections, ${HAS_TASKSET ? `gateway on core ${PROXY_CORE}, loader on core ${LOAD_CORE}` : 'unpinned'}\n`)
    process.stdout.write(`tokens\tRSS MiB\tgateway CPU s\tnon-2xx\terrors\n0\t${rssMiB(pid)?.toFixed(1)}\t${cpuSeconds(pid)?.toFixed(1)}\t0\t0\n`)
    let [sent, non2xx, errors, peak] = [0, 0, 0, 0]
    while (sent < TOTAL) {
      const size = Math.min(BATCH, TOTAL - sent)
      const tokens = Array.from({ length: size }, (_, i) => issuer.mint('ES256', benchClaims(sent + i)))
      let next = 0
      const result = await autocannon({
        url: `http://127.0.0.1:${gateway.port}/api/todos`,
        connections: CONNECTIONS,
        amount: size,
        requests: [{ setupRequest: (request: autocannon.Request) => ({ ...request, headers: { ...request.headers, authorization: `Bearer ${tokens[next++] ?? ''}` } }) }]
      })
      sent += size
      non2xx += result.non2xx
      errors += result.errors + result.timeouts
      const rss = rssMiB(pid) ?? 0
      peak = Math.max(peak, rss)
      process.stdout.write(`${sent}\t${rss.toFixed(1)}\t${cpuSeconds(pid)?.toFixed(1)}\t${non2xx}\t${errors}\n`)
    }
    const after = rssMiB(pid) ?? 0
    process.stdout.write(`RSS after ${sent} distinct tokens: ${after.toFixed(1)} MiB (peak ${peak.toFixed(1)} MiB; target ≤ ${TARGET_MIB} MiB after 1,000,000: ` +
      `${sent >= 1_000_000 ? (after <= TARGET_MIB ? 'met' : 'NOT met') : 'not measured at this count'}); non-2xx ${non2xx}, errors ${errors}\n`)
  } finally {
    await stop()
  }
}

await main()
