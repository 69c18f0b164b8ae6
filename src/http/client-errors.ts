/**
 * Answers for requests that fail before routing: unparseable HTTP, oversized headers, URLs the router
 * cannot read. Each still gets the documented JSON error, never Node's bare 400 or a stack trace, and,
 * like every other answer, a decision line and a count (route null, reason `headers_too_large` or
 * `request_malformed`; see docs/operations.md).
 */
import type { Socket } from 'node:net'
import { GatewayError, deny } from '../shared/errors.js'
import type { DecisionLog } from './decision-log.js'
import { rawErrorResponse } from './reply-error.js'

export const headersTooLarge = (): GatewayError =>
  new GatewayError(431, 'request_header_fields_too_large', 'headers_too_large', 'the request headers are too large')

/** 417 for an `Expect` other than `100-continue` (RFC 9110 §10.1.1; docs/proxying.md). */
export const expectationFailed = (): GatewayError =>
  new GatewayError(417, 'expectation_failed', 'expectation_unsupported', 'the only expectation supported is 100-continue')

/**
 * Node's `clientError` handler: answers on the socket if it can still be written, then closes it, and
 * records the answer in `decisions`.
 */
export function clientErrorHandler (decisions: Pick<DecisionLog, 'answeredOnSocket'>): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    if (!socket.writable) {
      socket.destroy()
      return
    }
    const code = err.code ?? ''
    if (code === 'ECONNRESET' || code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // The client went away, or sent nothing in time: there is nobody to answer, and nothing was decided.
      socket.destroy()
      return
    }
    const [error, statusText] = code === 'HPE_HEADER_OVERFLOW'
      ? [headersTooLarge(), 'Request Header Fields Too Large']
      : [deny.badRequest('request_malformed', 'the request is not valid HTTP'), 'Bad Request']
    socket.end(rawErrorResponse(error, statusText))
    decisions.answeredOnSocket(error)
  }
}
