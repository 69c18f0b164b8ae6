/**
 * A form body (`application/x-www-form-urlencoded`) sent with a bearer header, checked for a second token
 * (`access_token`, RFC 6750 §2) without giving up streaming. Up to `FORM_HOLD_BYTES` are held before
 * anything goes upstream: a form that ends within that bound (any real form) is checked whole, and one that
 * carries a token is refused before the upstream sees a byte. A longer body is sent on as it arrives and
 * still scanned: if a token turns up later, the upstream request is aborted mid-body (the upstream never
 * gets a complete request) and the client gets the same 400. See docs/proxying.md.
 */
import { Readable, Transform } from 'node:stream'
import type { GatewayError } from '../shared/errors.js'
import { FormTokenScanner } from '../request/form-token.js'

/** Bytes of a form body held back for a whole-body check before anything goes upstream. */
export const FORM_HOLD_BYTES = 64 * 1024

/**
 * Reads `payload` until it ends or passes `holdBytes`, then calls back with the body to forward (a
 * stream that yields the same bytes), or with `refusal()` when it carries an `access_token` parameter.
 */
export function checkFormBody (payload: Readable, refusal: () => GatewayError,
  callback: (err: Error | null, body?: Readable) => void, holdBytes = FORM_HOLD_BYTES): void {
  const scanner = new FormTokenScanner()
  const held: Buffer[] = []
  let size = 0
  let settled = false
  const settle = (err: Error | null, body?: Readable): void => {
    if (settled) return
    settled = true
    payload.off('data', onData).off('end', onEnd).off('error', onError)
    callback(err, body)
  }
  const onData = (chunk: Buffer): void => {
    if (scanner.push(chunk)) return settle(refusal())
    held.push(chunk)
    size += chunk.length
    if (size <= holdBytes) return
    // Too long to hold: forward what is held, then the rest as it comes, scanning on.
    payload.pause()
    const scanning = new Transform({
      transform (next: Buffer, _encoding, done) { done(scanner.push(next) ? refusal() : null, next) },
      flush (done) { done(scanner.end() ? refusal() : null) }
    })
    scanning.push(Buffer.concat(held))
    settle(null, scanning)
    payload.pipe(scanning)
    payload.once('error', (err) => scanning.destroy(err))
  }
  const onEnd = (): void => {
    if (scanner.end()) return settle(refusal())
    settle(null, Readable.from(held.length === 1 ? held : [Buffer.concat(held)]))
  }
  const onError = (err: Error): void => { settle(err) }
  payload.on('data', onData).on('end', onEnd).on('error', onError)
}
