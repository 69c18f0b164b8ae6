/**
 * An open WebSocket: the client's socket and the upstream's, after both sides agreed to switch protocols.
 * Bytes are relayed as they come, in each direction, with backpressure (a side that cannot keep up
 * pauses the other's reads); either side ending, closing or failing ends the other.
 *
 * The gateway can also close the WebSocket itself (token expired, config reloaded, shutdown). Why not let
 * the `ws` package terminate both sides: it would decode every message and re-encode it, negotiate its own
 * extensions, and hold whole messages in memory. Instead each direction counts frame lengths
 * (`websocket-frames.ts`) and the gateway's close frame is written at the next frame boundary, so the
 * stream stays byte for byte what the peers sent. A peer that stops mid-frame is cut after
 * `CLOSE_GRACE_MS`.
 */
import type { Duplex } from 'node:stream'
import { FrameBoundaries, closeFrame } from './websocket-frames.js'

/** Milliseconds a tunnel closed by the gateway waits for both peers to finish closing before cutting them. */
export const CLOSE_GRACE_MS = 2000

/** One direction: bytes from `from` to `to`, frame boundaries counted, a close frame injected on demand. */
class Direction {
  private readonly frames = new FrameBoundaries()
  /** The close frame waiting for the next boundary; once written, nothing more is relayed this way. */
  private pendingClose: Buffer | null = null
  private stopped = false

  constructor (private readonly from: Duplex, private readonly to: Duplex) {}

  /** Relays a chunk (`head` bytes read with the handshake, then each `data`). */
  relay (chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return
    if (this.pendingClose !== null) {
      const end = this.frames.advance(chunk, 0, true)
      if (!this.frames.atBoundary) {
        this.write(chunk)
        if (this.frames.broken) this.to.destroy()
        return
      }
      this.write(chunk.subarray(0, end))
      this.finish(this.pendingClose)
      return
    }
    this.frames.advance(chunk)
    this.write(chunk)
  }

  /** Ends this direction with a close frame at the next frame boundary (at once when between frames). */
  close (frame: Buffer): void {
    if (this.stopped || this.pendingClose !== null) return
    if (this.frames.broken) {
      this.stopped = true
      this.to.destroy()
    } else if (this.frames.atBoundary) this.finish(frame)
    else {
      this.pendingClose = frame
      // The rest of the frame under way must still arrive.
      this.from.resume()
    }
  }

  private finish (frame: Buffer): void {
    this.stopped = true
    this.pendingClose = null
    this.to.end(frame)
  }

  private write (chunk: Buffer): void {
    if (this.to.write(chunk) || this.pendingClose !== null) return
    this.from.pause()
    this.to.once('drain', () => { this.from.resume() })
  }
}

export class WebSocketTunnel {
  private readonly toUpstream: Direction
  private readonly toClient: Direction
  private closedSides = 0
  private grace: NodeJS.Timeout | null = null
  /** True once the gateway has begun closing it (expiry, reload, shutdown). */
  closing = false
  /** Resolves when both sockets are closed. */
  readonly done: Promise<void>

  /**
   * `clientHead` and `upstreamHead` are the bytes each side sent right after its handshake, read along
   * with it; they are relayed first.
   */
  constructor (private readonly client: Duplex, private readonly upstream: Duplex, clientHead: Buffer, upstreamHead: Buffer) {
    this.toUpstream = new Direction(client, upstream)
    this.toClient = new Direction(upstream, client)
    let finished: () => void = () => {}
    this.done = new Promise((resolve) => { finished = resolve })
    const sides: Array<[Duplex, Duplex, Direction]> = [[client, upstream, this.toUpstream], [upstream, client, this.toClient]]
    for (const [socket, other, direction] of sides) {
      socket.on('data', (chunk: Buffer) => { direction.relay(chunk) })
      // A half-close is passed on: the other side sends its FIN once what it was sent is flushed.
      socket.on('end', () => { other.end() })
      socket.on('error', () => { other.destroy() })
      socket.on('close', () => {
        other.end()
        if (++this.closedSides < 2) {
          // The other side gets the grace period to finish; after it, it is cut.
          this.armGrace()
          return
        }
        if (this.grace !== null) clearTimeout(this.grace)
        finished()
      })
    }
    this.toClient.relay(upstreamHead)
    this.toUpstream.relay(clientHead)
    // The handshake left both paused (see upgrade.ts); data listeners alone do not resume an explicit pause.
    client.resume()
    upstream.resume()
  }

  /**
   * Closes the WebSocket from the gateway: a close frame with `code` and `reason` toward the client
   * (unmasked) and toward the upstream (masked), each at its next frame boundary, then both sockets end.
   */
  close (code: number, reason: string): void {
    if (this.closing) return
    this.closing = true
    this.toClient.close(closeFrame(code, reason, false))
    this.toUpstream.close(closeFrame(code, reason, true))
    this.armGrace()
  }

  /** Cuts both sockets at once, without close frames. */
  destroy (): void {
    this.client.destroy()
    this.upstream.destroy()
  }

  private armGrace (): void {
    if (this.grace !== null) return
    this.grace = setTimeout(() => { this.destroy() }, CLOSE_GRACE_MS)
    this.grace.unref()
  }
}
