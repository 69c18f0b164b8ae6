/**
 * Answers for requests that fail before routing: unparseable HTTP, oversized headers, URLs the router
 * cannot read. Each still gets the JSON error of docs/responses.md, never Node's bare 400 or a stack trace.
 */
import type { Socket } from 'node:net'
import { GatewayError, deny } from '../shared/errors.js'
import { rawErrorResponse } from './reply-error.js'

export const headersTooLarge = (): GatewayError =>
  new GatewayError(431, 'request_header_fields_too_large', 'headers_too_large', 'the request headers are too large')

/** 417 for an `Expect` other than `100-continue` (RFC 9110 §10.1.1; docs/proxying.md). */
export const expectationFailed = (): GatewayError =>
  new GatewayError(417, 'expectation_failed', 'expectation_unsupported', 'the only expectation supported is 100-continue')

/** Node's `clientError`: answer on the socket if it can still be written, then close it. */
export function handleClientError (err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const code = err.code ?? ''
  if (code === 'ECONNRESET' || code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    // The client went away, or sent nothing in time: there is nobody to answer.
    socket.destroy()
    return
  }
  const response = code === 'HPE_HEADER_OVERFLOW'
    ? rawErrorResponse(headersTooLarge(), 'Request Header Fields Too Large')
    : rawErrorResponse(deny.badRequest('request_malformed', 'the request is not valid HTTP'), 'Bad Request')
  socket.end(response)
}
