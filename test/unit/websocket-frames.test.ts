/**
 * Frame boundaries and the gateway's own close frames: the tracker must find where each frame ends
 * however the stream is cut into chunks, and a tunnel closed mid-frame must finish that frame before
 * its close frame, masked toward the upstream and unmasked toward the client (RFC 6455 §5).
 */
import { Duplex } from 'node:stream'
import t from 'tap'
import { CLOSE_POLICY_VIOLATION, FrameBoundaries, closeFrame } from '../../src/http/websocket-frames.js'
import { WebSocketTunnel } from '../../src/http/websocket-tunnel.js'

/** One frame as a peer would send it: FIN, the opcode, a payload of `length` bytes, masked or not. */
function frame (opcode: number, length: number, masked: boolean, fill = 0x61): Buffer {
  let lengthBytes: Buffer
  if (length < 126) lengthBytes = Buffer.from([length])
  else if (length < 65536) lengthBytes = Buffer.from([126, length >> 8, length & 0xff])
  else {
    lengthBytes = Buffer.alloc(9)
    lengthBytes[0] = 127
    lengthBytes.writeUInt32BE(Math.floor(length / 2 ** 32), 1)
    lengthBytes.writeUInt32BE(length % 2 ** 32, 5)
  }
  if (masked) lengthBytes[0] = (lengthBytes[0] as number) | 0x80
  return Buffer.concat([Buffer.from([0x80 | opcode]), lengthBytes, masked ? Buffer.from([1, 2, 3, 4]) : Buffer.alloc(0), Buffer.alloc(length, fill)])
}

/** The offsets at which frames end, found by feeding `stream` in chunks of `size` bytes. */
function boundaries (stream: Buffer, size: number): number[] {
  const frames = new FrameBoundaries()
  const ends: number[] = []
  for (let base = 0; base < stream.length; base += size) {
    const chunk = stream.subarray(base, base + size)
    let at = 0
    while (at < chunk.length) {
      at = frames.advance(chunk, at, true)
      if (frames.atBoundary) ends.push(base + at)
    }
  }
  return ends
}

t.test('frame ends are found for every length form, masked or not, whatever the chunking', async (t) => {
  const frames = [frame(1, 0, false), frame(1, 5, true), frame(2, 125, false), frame(2, 126, true), frame(2, 65535, false), frame(2, 70000, true), frame(9, 3, false)]
  const stream = Buffer.concat(frames)
  const expected: number[] = []
  let end = 0
  for (const f of frames) expected.push(end += f.length)
  for (const size of [1, 2, 3, 7, 13, 126, 4096, stream.length]) {
    t.same(boundaries(stream, size), expected, `chunks of ${size} bytes`)
  }
})

t.test('a 64-bit length beyond 2^53 is not counted: the tracker reports it is lost', async (t) => {
  const frames = new FrameBoundaries()
  frames.advance(Buffer.from([0x82, 127, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]))
  t.equal(frames.broken, true)
  t.equal(frames.atBoundary, false)
})

t.test('close frames: code and reason, masked toward the upstream only', async (t) => {
  const plain = closeFrame(CLOSE_POLICY_VIOLATION, 'token expired', false)
  t.same([...plain.subarray(0, 2)], [0x88, 15])
  t.equal(plain.readUInt16BE(2), 1008)
  t.equal(plain.subarray(4).toString('utf8'), 'token expired')

  const masked = closeFrame(CLOSE_POLICY_VIOLATION, 'token expired', true)
  t.same([...masked.subarray(0, 2)], [0x88, 0x80 | 15])
  const mask = masked.subarray(2, 6)
  const payload = Buffer.from(masked.subarray(6).map((byte, i) => byte ^ (mask[i % 4] as number)))
  t.equal(payload.readUInt16BE(0), 1008)
  t.equal(payload.subarray(2).toString('utf8'), 'token expired')
})

/** A socket stand-in: what is written to it is kept, what it "receives" is pushed by the test. */
class FakeSocket extends Duplex {
  readonly written: Buffer[] = []
  ended = false
  override _read (): void {}
  override _write (chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.written.push(chunk)
    done()
  }

  override _final (done: () => void): void {
    this.ended = true
    done()
  }

  all (): Buffer { return Buffer.concat(this.written) }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

t.test('a tunnel closed mid-frame finishes the frame, then sends its close frame and nothing more', async (t) => {
  const client = new FakeSocket()
  const upstream = new FakeSocket()
  const tunnel = new WebSocketTunnel(client, upstream, Buffer.alloc(0), Buffer.alloc(0))
  t.teardown(() => { client.destroy(); upstream.destroy() })

  const big = frame(2, 1000, false, 0x62)
  const next = frame(1, 4, false, 0x63)
  upstream.push(big.subarray(0, 300))
  await tick()
  tunnel.close(CLOSE_POLICY_VIOLATION, 'token expired')
  await tick()
  t.same(upstream.all()[0], 0x88, 'toward the upstream, between frames: the close frame at once')
  t.equal((upstream.all()[1] as number) & 0x80, 0x80, 'masked')
  t.equal(upstream.ended, true)
  t.equal(client.all().length, 300, 'toward the client: the frame under way is not cut')
  t.equal(client.ended, false)

  upstream.push(Buffer.concat([big.subarray(300), next]))
  await tick()
  const toClient = client.all()
  t.equal(toClient.length, big.length + 17, 'the rest of the frame, then the close frame; the next frame is dropped')
  t.ok(toClient.subarray(0, big.length).equals(big), 'the frame byte for byte')
  t.same([...toClient.subarray(big.length, big.length + 2)], [0x88, 15], 'then an unmasked close frame')
  t.equal(toClient.readUInt16BE(big.length + 2), 1008)
  t.equal(client.ended, true)
})

t.test('bytes read with the handshake are relayed first, and frames pass through untouched', async (t) => {
  const client = new FakeSocket()
  const upstream = new FakeSocket()
  const early = frame(1, 3, true)
  const greeting = frame(1, 2, false)
  const tunnel = new WebSocketTunnel(client, upstream, early, greeting)
  t.teardown(() => { client.destroy(); upstream.destroy() })
  t.ok(upstream.all().equals(early))
  t.ok(client.all().equals(greeting))
  const compressed = frame(2, 10, true)
  compressed[0] = (compressed[0] as number) | 0x40 // RSV1, as permessage-deflate sets it
  client.push(compressed)
  await tick()
  t.ok(upstream.all().equals(Buffer.concat([early, compressed])))
  t.equal(tunnel.closing, false)
})
