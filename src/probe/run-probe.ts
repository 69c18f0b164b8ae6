/**
 * `scopegate probe URL`: sends the hostile requests one after another (a smoke test, not a load test),
 * prints one line per request and a summary, and returns the exit code. See docs/kubernetes.md.
 */
import { hostileRequests, type ForgedClaims } from './hostile-requests.js'
import { sendProbeRequest } from './send-request.js'
import { judgeAnswer, summarize, type ProbeResult } from './verdict.js'

export interface ProbeOptions extends ForgedClaims {
  /** A protected route of the deployed API, http or https. */
  url: URL
  /** The Host header to send instead of the URL's. */
  host?: string
  /** Time allowed per request, in milliseconds. */
  timeoutMs: number
}

function format (result: ProbeResult): string {
  return `${result.name.padEnd(16)} ${String(result.status ?? '-').padEnd(4)} ${result.verdict.padEnd(13)} ${result.meaning}`
}

/** Runs the probe, writing each line as it is known; resolves to the exit code. */
export async function runProbe (options: ProbeOptions, write: (line: string) => void): Promise<number> {
  const requests = await hostileRequests(options.url, options)
  const results: ProbeResult[] = []
  for (const request of requests) {
    let result: ProbeResult
    try {
      const answer = await sendProbeRequest(options.url, request.target, request.headers, { host: options.host, timeoutMs: options.timeoutMs })
      result = judgeAnswer(request, answer)
    } catch (err) {
      result = judgeAnswer(request, { failure: `no answer: ${(err as Error).message}` })
    }
    results.push(result)
    write(format(result))
    // Nothing answers there: the rest would wait out the same timeout and prove nothing more.
    if (result.verdict === 'unreachable') break
  }
  const summary = summarize(results)
  write(summary.line)
  return summary.exitCode
}
