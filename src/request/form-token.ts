/**
 * Finds an `access_token` parameter in an `application/x-www-form-urlencoded` body as it streams, for
 * RFC 6750 §2: a request with a bearer header must not carry a second token in its form body (see
 * `extract-token.ts`). Only parameter names are looked at, and a name long enough that it cannot decode
 * to `access_token` is not kept, so memory stays a few dozen bytes whatever the body's size; values are
 * skipped with `indexOf`. Names are decoded as a form decoder would (`access%5Ftoken` is the parameter).
 */
import { carriesTokenParameter } from './extract-token.js'

const AMPERSAND = 0x26
const EQUALS = 0x3d
/** `access_token` fully percent-encoded is 36 characters: a longer name is not it. */
const LONGEST_NAME = 36

export class FormTokenScanner {
  /** The current parameter's name so far, or null once past its `=` (in the value). */
  private name: string | null = ''
  private overlong = false
  private seen = false

  /** True once a chunk has completed an `access_token` name. Chunks are scanned in order. */
  push (chunk: Uint8Array): boolean {
    let i = 0
    while (i < chunk.length && !this.seen) {
      if (this.name === null) { // in a value: skip to the next parameter
        const next = chunk.indexOf(AMPERSAND, i)
        if (next === -1) return false
        this.name = ''
        i = next + 1
        continue
      }
      const c = chunk[i++] as number
      if (c === AMPERSAND || c === EQUALS) {
        this.check()
        this.name = c === EQUALS ? null : ''
      } else if (!this.overlong) {
        this.name += String.fromCharCode(c)
        if (this.name.length > LONGEST_NAME) this.overlong = true
      }
    }
    return this.seen
  }

  /** True when the body, now complete, carried an `access_token` parameter. */
  end (): boolean {
    if (this.name !== null) this.check()
    return this.seen
  }

  private check (): void {
    if (!this.overlong && this.name !== null && this.name !== '' && carriesTokenParameter(this.name)) this.seen = true
    this.overlong = false
  }
}
