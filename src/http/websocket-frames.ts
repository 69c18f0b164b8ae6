/**
 * Where WebSocket frames end, in a byte stream the gateway otherwise relays untouched (RFC 6455 §5.2).
 * The tunnel never decodes a message: it reads each frame header for its length only, so extensions and
 * compression (`permessage-deflate` sets RSV1 and changes nothing else) pass through byte for byte. What
 * it needs the boundaries for is to send a close frame of its own (`closeFrame`) without cutting a
 * frame in two, which would corrupt the stream the peer reads.
 */
import { randomBytes } from 'node:crypto'

/** Frame lengths past 2^53 - 1 (the RFC allows 2^63 - 1) cannot be counted exactly in a number. */
const MAX_HIGH_WORD = 0x1fffff

/** Counts frame headers and payloads across chunks; one per direction of a tunnel. */
export class FrameBoundaries {
  private readonly header = Buffer.alloc(14)
  private headerHave = 0
  private headerNeed = 2
  private payloadLeft = 0
  /** A length the tracker cannot count: boundaries are unknown from then on. */
  private lost = false

  /** True between two frames: a frame of the gateway's own may be written here. */
  get atBoundary (): boolean {
    return !this.lost && this.headerHave === 0 && this.payloadLeft === 0
  }

  /** True once a frame header made no sense; the stream can then only be cut, not closed cleanly. */
  get broken (): boolean {
    return this.lost
  }

  /**
   * Reads `chunk` from `start`. Returns where it stopped: with `stopAtBoundary`, just after the first frame
   * that ends in the chunk; otherwise (or when none ends in it), the chunk's length.
   */
  advance (chunk: Buffer, start = 0, stopAtBoundary = false): number {
    let i = start
    while (i < chunk.length && !this.lost) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, chunk.length - i)
        this.payloadLeft -= n
        i += n
        if (this.payloadLeft === 0 && stopAtBoundary) return i
        continue
      }
      this.header[this.headerHave++] = chunk[i++] as number
      if (this.headerHave === 2) {
        const second = this.header[1] as number
        const length7 = second & 0x7f
        this.headerNeed = 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + ((second & 0x80) === 0 ? 0 : 4)
      }
      if (this.headerHave >= 2 && this.headerHave === this.headerNeed) {
        this.payloadLeft = this.payloadLength()
        this.headerHave = 0
        this.headerNeed = 2
        if (this.payloadLeft === 0 && stopAtBoundary) return i
      }
    }
    return this.lost ? chunk.length : i
  }

  private payloadLength (): number {
    const length7 = (this.header[1] as number) & 0x7f
    if (length7 < 126) return length7
    if (length7 === 126) return this.header.readUInt16BE(2)
    const high = this.header.readUInt32BE(2)
    if (high > MAX_HIGH_WORD) {
      this.lost = true
      return 0
    }
    return high * 2 ** 32 + this.header.readUInt32BE(6)
  }
}

/** Close codes the gateway sends (RFC 6455 §7.4.1). */
export const CLOSE_GOING_AWAY = 1001
export const CLOSE_POLICY_VIOLATION = 1008

/**
 * A close frame: FIN, opcode 0x8, the code and a short reason. Toward the upstream the gateway speaks as
 * a client and must mask (RFC 6455 §5.3); toward the client, as a server, it must not.
 */
export function closeFrame (code: number, reason: string, masked: boolean): Buffer {
  const text = Buffer.from(reason, 'utf8').subarray(0, 123)
  const payload = Buffer.alloc(2 + text.length)
  payload.writeUInt16BE(code, 0)
  text.copy(payload, 2)
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload])
  const mask = randomBytes(4)
  for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i % 4] as number)
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, payload])
}
