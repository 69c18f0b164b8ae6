/**
 * What `scopegate probe` makes of each answer and of a whole run (src/probe/verdict.ts), as tables: the
 * end-to-end test (probe.test.ts) meets 2xx, 401, redirects and unreachable hosts; these cover the rest
 * (403, 400, 404, 5xx) and the summary's order of precedence.
 */
import t from 'tap'
import type { HostileRequest } from '../../src/probe/hostile-requests.js'
import { judgeAnswer, summarize, type ProbeResult, type Verdict } from '../../src/probe/verdict.js'

const request = (name: string): HostileRequest => ({ name, target: '/todos', headers: {}, ifAllowed: `${name} got through` })

t.test('one answer', async (t) => {
  const cases: Array<[string, Parameters<typeof judgeAnswer>[1], Verdict, string]> = [
    ['200', { status: 200 }, 'NOT PROTECTED', 'x got through'],
    ['204', { status: 204 }, 'NOT PROTECTED', 'x got through'],
    ['401 with a code', { status: 401, error: 'invalid_token' }, 'refused', 'no valid token (invalid_token)'],
    ['401 without a body', { status: 401 }, 'refused', 'no valid token'],
    ['403', { status: 403, error: 'insufficient_scope' }, 'refused', 'forbidden (insufficient_scope)'],
    ['400', { status: 400, error: 'invalid_request' }, 'refused', 'refused as malformed (invalid_request)'],
    ['404', { status: 404 }, 'refused', 'client error'],
    ['302 to another host', { status: 302, redirectsTo: 'login.example.com' }, 'refused', 'redirected to login.example.com, not followed'],
    ['302 without Location', { status: 302 }, 'refused', 'redirected to no Location, not followed'],
    ['502', { status: 502 }, 'inconclusive', 'server error: says nothing about protection'],
    ['no answer', { failure: 'no answer: connect ECONNREFUSED' }, 'unreachable', 'no answer: connect ECONNREFUSED']
  ]
  for (const [name, answer, verdict, meaning] of cases) {
    t.match(judgeAnswer(request('x'), answer), { name: 'x', verdict, meaning }, name)
  }
})

const result = (name: string, status: number | null, verdict: Verdict): ProbeResult => ({ name, status, verdict, meaning: '' })

t.test('a whole run', async (t) => {
  const refused = [result('no-token', 401, 'refused'), result('alg-none', 401, 'refused'), result('double-slash', 400, 'refused')]
  const cases: Array<[string, ProbeResult[], number, RegExp]> = [
    ['everything refused, 401 without a token', refused, 0, /^protected: all 3 hostile requests were refused$/],
    ['one 2xx among refusals', [...refused, result('dot-segment', 200, 'NOT PROTECTED')], 1, /^NOT PROTECTED: 1 of 4 .*\(dot-segment\)$/],
    ['a 2xx wins over an unreachable one', [result('no-token', 200, 'NOT PROTECTED'), result('alg-none', null, 'unreachable')], 1, /^NOT PROTECTED: /],
    ['unreachable', [result('no-token', null, 'unreachable')], 2, /^unreachable: no-token got no answer/],
    ['a 5xx', [...refused, result('wrong-key', 502, 'inconclusive')], 1, /^inconclusive: /],
    ['404 without a token', [result('no-token', 404, 'refused'), result('alg-none', 404, 'refused')], 1, /^inconclusive: /],
    ['403 without a token', [result('no-token', 403, 'refused')], 1, /^inconclusive: /]
  ]
  for (const [name, results, exitCode, line] of cases) {
    const summary = summarize(results)
    t.equal(summary.exitCode, exitCode, `${name}: exit ${exitCode}`)
    t.match(summary.line, line, name)
  }
})
