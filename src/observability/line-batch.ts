/**
 * Log lines gathered over one turn of the event loop and handed to the destination as one write.
 *
 * Under load a turn of the loop finishes many requests, each with its decision line. Written one by one,
 * each line cost an asynchronous `fs.write` (a thread-pool hop and a callback) and sonic-boom's
 * bookkeeping; on a denial, which has no upstream request, that was about a fifth of the process's CPU
 * (bench/RESULTS.md, "Proxy-mode CPU per request"). Gathered, they cost one write per turn. Nothing waits
 * for a timer: the batch goes out at the end of the turn that wrote it (`setImmediate`), so a line reaches
 * the destination as soon as it did before, in the same order as it was written, whatever logger wrote it.
 *
 * Bounded: a batch that reaches `MAX_BATCH_CHARS` is written at once. On exit the pending batch is written
 * and the destination flushed synchronously, so the lines of a failed start are not lost.
 */

/** What the batch writes to: pino's sonic-boom destination. */
export interface LineDestination {
  write (chunk: string): unknown
  flushSync?: () => void
}

/** A batch larger than this (UTF-16 code units, about bytes for log lines) is written at once. */
const MAX_BATCH_CHARS = 64 * 1024

/** Every batch of the process, written out on exit by one listener. Weak: a batch nothing uses is let go. */
const batches = new Set<WeakRef<LineBatch>>()
const forgotten = new FinalizationRegistry<WeakRef<LineBatch>>((ref) => { batches.delete(ref) })
process.once('exit', () => { for (const batch of batches) batch.deref()?.flushSync() })

export class LineBatch {
  private pending = ''
  private scheduled = false

  constructor (private readonly destination: LineDestination) {
    const ref = new WeakRef(this)
    batches.add(ref)
    forgotten.register(this, ref)
  }

  /** Queues one line (or several, newline-terminated) for the end of this turn of the event loop. */
  write (line: string): boolean {
    this.pending += line
    if (this.pending.length >= MAX_BATCH_CHARS) this.drain()
    else if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.drain)
    }
    return true
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
