/**
 * What each answer to a hostile request means, and what they mean together. The rule: any 2xx is "not
 * protected"; a 4xx, or a redirect (not followed), is a refusal; a 5xx says nothing either way. The API
 * counts as protected only when everything was refused and the request without a token got 401, the
 * answer scopegate gives through every ingress: anything else (a 404 everywhere, say) more likely means
 * the URL names no protected route, and a smoke test must not pass on that.
 */
import type { HostileRequest } from './hostile-requests.js'
import type { ProbeAnswer } from './send-request.js'

export type Verdict = 'refused' | 'NOT PROTECTED' | 'inconclusive' | 'unreachable'

/** One line of the report. */
export interface ProbeResult {
  name: string
  /** The status, or null when the request got no answer. */
  status: number | null
  verdict: Verdict
  meaning: string
}

/** Exit codes of `scopegate probe`. */
export const PROBE_EXIT = { protected: 0, notProtected: 1, unreachable: 2 } as const

/** The verdict on one answer (or on `failure`, the reason there was none). */
export function judgeAnswer (request: HostileRequest, answer: ProbeAnswer | { failure: string }): ProbeResult {
  if ('failure' in answer) return { name: request.name, status: null, verdict: 'unreachable', meaning: answer.failure }
  const { status } = answer
  const code = answer.error === undefined ? '' : ` (${answer.error})`
  const result = (verdict: Verdict, meaning: string): ProbeResult => ({ name: request.name, status, verdict, meaning })
  if (status >= 200 && status < 300) return result('NOT PROTECTED', request.ifAllowed)
  if (status >= 300 && status < 400) {
    return result('refused', `redirected to ${answer.redirectsTo ?? 'no Location'}, not followed`)
  }
  if (status === 401) return result('refused', `no valid token${code}`)
  if (status === 403) return result('refused', `forbidden${code}`)
  if (status === 400) return result('refused', `refused as malformed${code}`)
  if (status >= 400 && status < 500) return result('refused', `client error${code}`)
  return result('inconclusive', `server error${code}: says nothing about protection`)
}

/** The summary line and exit code of a whole run. */
export function summarize (results: ProbeResult[]): { line: string, exitCode: number } {
  const total = results.length
  const through = results.filter((r) => r.verdict === 'NOT PROTECTED')
  if (through.length > 0) {
    return { line: `NOT PROTECTED: ${through.length} of ${total} hostile requests got a 2xx (${through.map((r) => r.name).join(', ')})`, exitCode: PROBE_EXIT.notProtected }
  }
  const unreachable = results.filter((r) => r.verdict === 'unreachable')
  if (unreachable.length > 0) {
    return { line: `unreachable: ${unreachable.map((r) => r.name).join(', ')} got no answer; nothing is proven`, exitCode: PROBE_EXIT.unreachable }
  }
  const baseline = results.find((r) => r.name === 'no-token')
  if (results.some((r) => r.verdict === 'inconclusive') || baseline?.status !== 401) {
    return {
      line: 'inconclusive: nothing got a 2xx, but a request without a token did not get 401 or some got a 5xx; is the URL a protected route of the API?',
      exitCode: PROBE_EXIT.notProtected
    }
  }
  return { line: `protected: all ${total} hostile requests were refused`, exitCode: PROBE_EXIT.protected }
}
