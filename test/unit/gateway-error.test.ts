/**
 * GatewayError captures no stack trace (a denial is an expected outcome), without touching
 * `Error.stackTraceLimit`, which belongs to the whole process.
 */
import t from 'tap'
import { GatewayError, deny, toGatewayError } from '../../src/shared/errors.js'

t.test('a GatewayError is an Error with its message and no captured stack', async (t) => {
  const err = deny.tokenMissing()
  t.ok(err instanceof Error)
  t.ok(err instanceof GatewayError)
  t.equal(err.message, 'a bearer token is required')
  t.equal(err.name, 'GatewayError')
  t.equal(err.stack, undefined)
  t.equal(String(err), 'GatewayError: a bearer token is required')
  t.notOk(Object.keys(err).includes('message'), 'message is not enumerable, as on any Error')
})

t.test('constructing one leaves Error.stackTraceLimit as it was, whatever its value', async (t) => {
  const before = Error.stackTraceLimit
  t.teardown(() => { Error.stackTraceLimit = before })
  for (const limit of [10, 3, 0, Infinity]) {
    Error.stackTraceLimit = limit
    void deny.noRoute()
    t.equal(Error.stackTraceLimit, limit)
    t.match(new Error('x').stack ?? '', limit === 0 ? /^Error: x$/ : /\n +at /, 'other errors keep their stacks')
  }
})

t.test('an internal error keeps its cause, which carries the stack', async (t) => {
  const cause = new Error('disk on fire')
  const err = toGatewayError(cause)
  t.equal(err.cause, cause)
  t.equal(err.status, 500)
  t.equal(err.detail, 'disk on fire')
  t.equal(deny.tokenMissing().cause, undefined)
  t.notOk('cause' in deny.tokenMissing())
})
