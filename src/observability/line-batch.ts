/**
 * Log lines gathered for a few milliseconds and handed to the destination as one write.
 *
 * Written one by one, each decision line cost an asynchronous `fs.write`: a hop to the thread pool, whose
 * thread then competes for the same core, and a callback. On a denial, which has no upstream request,
 * that was about a fifth of the process's CPU (bench/RESULTS.md, "Proxy-mode CPU per request"). Gathered,
 * a busy gateway writes at most about 1000 / `BATCH_MS` times a second, whatever its request rate. A
 * line reaches stdout at most `BATCH_MS` later than before; the order is kept, whatever logger wrote it.
 *
 * Bounded: a batch that reaches `MAX_BATCH_CHARS` is written at once. On exit the pending batch is written
 * and the destination flushed synchronously, so the lines of a failed start or a SIGTERM are not lost.
 */

/** What the batch writes to: pino's sonic-boom destination. */
export interface LineDestination {
  write (chunk: string): unknown
  flush?: (done: (err?: Error) => void) => void
  flushSync?: () => void
}

/** A batch larger than this (UTF-16 code units, about bytes for log lines) is written at once. */
const MAX_BATCH_CHARS = 64 * 1024
/** The longest a line waits for its batch, milliseconds. */
export const BATCH_MS = 10

/** Runs `drain` once, later. The timer does not keep the process alive: exit writes what is pending. */
export type Schedule = (drain: () => void) => void

const afterBatchMs: Schedule = (drain) => { setTimeout(drain, BATCH_MS).unref() }

/** Every batch of the process, written out on exit by one listener. Weak: a batch nothing uses is let go. */
const batches = new Set<WeakRef<LineBatch>>()
const forgotten = new FinalizationRegistry<WeakRef<LineBatch>>((ref) => { batches.delete(ref) })
process.once('exit', () => { for (const batch of batches) batch.deref()?.flushSync() })

export class LineBatch {
  private pending = ''
  private scheduled = false

  /** @param schedule When the pending batch is written: `BATCH_MS` later by default; tests pass their own. */
  constructor (private readonly destination: LineDestination, private readonly schedule: Schedule = afterBatchMs) {
    const ref = new WeakRef(this)
    batches.add(ref)
    forgotten.register(this, ref)
  }

  /** Queues one line (or several, newline-terminated) for the next batch. */
  write (line: string): boolean {
    this.pending += line
    if (this.pending.length >= MAX_BATCH_CHARS) this.drain()
    else if (!this.scheduled) {
      this.scheduled = true
      this.schedule(this.drain)
    }
    return true
  }

  /** Writes what is pending now and calls `done` once the destination has written it (pino's `logger.flush`). */
  flush (done: (err?: Error) => void = () => {}): void {
    this.drain()
    if (this.destination.flush === undefined) done()
    else this.destination.flush(done)
  }

  /** Writes what is pending now and has the destination write it out synchronously (process exit). */
  flushSync (): void {
    this.drain()
    try {
      this.destination.flushSync?.()
    } catch {
      // A destination not open yet or already closed: nothing more can be written to it.
    }
  }

  private readonly drain = (): void => {
    this.scheduled = false
    if (this.pending === '') return
    const batch = this.pending
    this.pending = ''
    this.destination.write(batch)
  }
}
