/**
 * The decision line is serialized by hand (src/http/decision-log.ts). It must be exactly what pino would
 * have written for the same record: the same JSON, keys in the same order, whatever the claim values hold
 * (a lone surrogate is the one difference: escaped here, where pino's line carries U+FFFD).
 */
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import { createDecisionLog, decisionLine, type DecisionRecord } from '../../src/http/decision-log.js'
import { createLogger } from '../../src/observability/logger.js'

const base: DecisionRecord = {
  route: 'todos',
  method: 'GET',
  path: '/todos/1',
  decision: 'allow',
  reason: 'allowed',
  upstream: 'todo',
  status: 200,
  upstreamStatus: 200,
  sub: 'alice',
  clientId: 'todo-web',
  scopes: 'read:todos write:todos',
  latencyMs: 0.412
}

const records: Array<[string, DecisionRecord]> = [
  ['an allow', base],
  ['an answer written on the socket', { ...base, route: null, method: null, path: null, decision: 'deny', reason: 'headers_too_large', upstream: null, status: 431, upstreamStatus: null, sub: null, clientId: null, scopes: '', latencyMs: 0 }],
  ['a deny before any route', { ...base, route: null, path: null, decision: 'deny', reason: 'no_route', upstream: null, status: 404, upstreamStatus: null, sub: null, clientId: null, scopes: '', latencyMs: 0 }],
  ['a deny with detail', { ...base, decision: 'deny', reason: 'client_denied', status: 401, upstreamStatus: null, detail: 'client_id "CLIENT_ID" is denied' }],
  ['an audit deny', { ...base, decision: 'audit_deny', reason: 'scope_insufficient' }],
  ['quotes, backslashes and control characters', { ...base, sub: 'a"b\\c\n\t\u0000\u001f', path: '/todos/"%22' }],
  ['non-ASCII', { ...base, sub: 'ユーザー 🙂', scopes: 'é ü' }],
  ['lone surrogates', { ...base, clientId: '\ud800x\udc00' }],
  ['a large latency', { ...base, latencyMs: 123456.789 }],
  ['the token path', { ...base, tokenPath: 'introspection' }],
  ['the token path and a detail', { ...base, decision: 'deny', status: 401, upstreamStatus: null, tokenPath: 'cache', detail: 'introspection at idp: active false' }],
  ['trace ids (tracing on)', { ...base, tokenPath: 'jwt', trace_id: '4bf92f3577b34da6a3ce929d0e0e4736', span_id: '00f067aa0ba902b7' }]
]

/** What pino writes for `record` at `level`, through the same logger settings scopegate uses. */
function pinoLine (record: DecisionRecord, level: 'info' | 'warn'): { line: string, bindings: string } {
  let line = ''
  const destination = new Writable({ write (chunk: Buffer, _encoding, done) { line += chunk.toString('utf8'); done() } })
  const logger = createLogger({ level: 'info', destination })
  logger[level]({ ...record }, 'decision')
  const bindings = (logger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] ?? ''
  return { line, bindings }
}

t.test('each decision line is exactly the line pino would write for the same record', async (t) => {
  for (const [name, record] of records) {
    const level = record.decision === 'allow' ? 'info' : 'warn'
    const { line: expected, bindings } = pinoLine(record, level)
    await new Promise((resolve) => setImmediate(resolve))
    const parsed = JSON.parse(expected) as { time: number }
    const ours = decisionLine(level === 'info' ? 30 : 40, parsed.time, bindings, record)
    t.ok(ours.endsWith('\n'), `${name}: one line`)
    t.equal(ours.indexOf('\n'), ours.length - 1, `${name}: no raw newline inside`)
    const fields = JSON.parse(ours) as Record<string, unknown>
    t.same(fields, { level: level === 'info' ? 30 : 40, time: parsed.time, service: 'scopegate', ...record, msg: 'decision' }, `${name}: every value round-trips`)
    t.same(Object.keys(fields), Object.keys(parsed), `${name}: the keys of pino's line, in its order`)
    // pino writes a lone surrogate raw, so it arrives as U+FFFD; the hand-written line escapes it (\ud800).
    if (name !== 'lone surrogates') t.same(fields, parsed, `${name}: the values of pino's line`)
  }
})

t.test('a logger with no destination stream is refused when the decision log is created, not line by line', async (t) => {
  const logger = createLogger({ level: 'info', destination: new Writable({ write (_chunk, _encoding, done) { done() } }) })
  t.doesNotThrow(() => createDecisionLog(logger))
  const streamless = Object.create(logger) as typeof logger
  Object.defineProperty(streamless, pino.symbols.streamSym, { value: undefined })
  t.throws(() => createDecisionLog(streamless), /no destination stream/)
})
