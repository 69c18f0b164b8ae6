/**
 * Server nonces for DPoP proofs (RFC 9449 §8), stateless: a nonce is a time-window number and an HMAC of
 * it, so any process holding the same secret accepts it without shared state. A nonce is accepted in its
 * own window and the one after, so one minted just before a window ends still works; it proves a proof was
 * made no earlier than the window began, which bounds how long a proof made in advance stays usable.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

const MAC_BYTES = 16

export class DpopNonces {
  private readonly secret: Buffer
  private readonly windowMs: number
  private readonly now: () => number

  /** `secret` null: a random one for this process alone. `windowMs`: how long a nonce is current, in ms. */
  constructor (secret: string | null, windowMs: number, now: () => number = Date.now) {
    this.secret = secret === null ? randomBytes(32) : Buffer.from(secret, 'utf8')
    this.windowMs = windowMs
    this.now = now
  }

  private mac (window: number): Buffer {
    return createHmac('sha256', this.secret).update(String(window)).digest().subarray(0, MAC_BYTES)
  }

  private window (): number {
    return Math.floor(this.now() / this.windowMs)
  }

  /** The nonce to hand out now. */
  current (): string {
    const window = this.window()
    return `${window.toString(36)}.${this.mac(window).toString('base64url')}`
  }

  /** Whether a nonce from a proof was minted by a holder of the secret in this window or the last one. */
  accepts (nonce: unknown): boolean {
    if (typeof nonce !== 'string' || nonce.length > 64) return false
    const dot = nonce.indexOf('.')
    if (dot <= 0) return false
    const window = Number.parseInt(nonce.slice(0, dot), 36)
    const now = this.window()
    if (!Number.isSafeInteger(window) || window.toString(36) !== nonce.slice(0, dot) || window > now || window < now - 1) return false
    const given = Buffer.from(nonce.slice(dot + 1), 'base64url')
    return given.length === MAC_BYTES && timingSafeEqual(given, this.mac(window))
  }
}
