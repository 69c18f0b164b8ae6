/**
 * Log lines are gathered for a few milliseconds and written as one (src/observability/line-batch.ts): none
 * lost, none reordered, none held past the scheduled write, a large batch written at once, and the
 * pending lines written and flushed on exit. The schedule is injected, so no test waits for a timer.
 */
import { spawnSync } from 'node:child_process'
import t from 'tap'
import { LineBatch, type Schedule } from '../../src/observability/line-batch.js'

/** A schedule the test runs by hand: `due()` runs what is scheduled, as the timer would. */
function manual (): { schedule: Schedule, due: () => number } {
  let queued: Array<() => void> = []
  return {
    schedule: (drain) => { queued.push(drain) },
    due: () => {
      const run = queued
      queued = []
      for (const drain of run) drain()
      return run.length
    }
  }
}

class Recorder {
  writes: string[] = []
  flushes = 0
  write (chunk: string): boolean { this.writes.push(chunk); return true }
  flushSync (): void { this.flushes++ }
}

t.test('the lines written before the scheduled write go out as one write, in order', async (t) => {
  const destination = new Recorder()
  const timer = manual()
  const batch = new LineBatch(destination, timer.schedule)
  for (let i = 0; i < 5; i++) batch.write(`{"n":${i}}\n`)
  t.same(destination.writes, [], 'nothing written before the schedule runs')
  t.equal(timer.due(), 1, 'one write scheduled for the five lines')
  t.same(destination.writes, ['{"n":0}\n{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n'])
  batch.write('{"n":5}\n')
  t.equal(timer.due(), 1, 'the next line schedules the next write')
  t.same(destination.writes.slice(1), ['{"n":5}\n'])
  t.equal(timer.due(), 0, 'nothing pending, nothing scheduled')
  t.equal(destination.writes.length, 2)
})

t.test('the default schedule writes the batch by itself (a real timer, BATCH_MS)', async (t) => {
  const destination = new Recorder()
  const batch = new LineBatch(destination)
  batch.write('a\n')
  // Bounded: the batch is due after BATCH_MS; 200 polls of 25 ms leave the loaded host five seconds.
  for (let i = 0; i < 200 && destination.writes.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 25))
  t.same(destination.writes, ['a\n'])
})

t.test('a batch of 64 KiB is written at once, without waiting for the schedule', async (t) => {
  const destination = new Recorder()
  const timer = manual()
  const batch = new LineBatch(destination, timer.schedule)
  const line = `${'x'.repeat(1023)}\n`
  for (let i = 0; i < 64; i++) batch.write(line)
  t.equal(destination.writes.length, 1, 'written when the 64th KiB arrived')
  t.equal(destination.writes[0]?.length, 64 * 1024)
  batch.write(line)
  timer.due()
  t.same(destination.writes.map((w) => w.length), [64 * 1024, 1024], 'the rest follows at the scheduled write')
})

t.test('flushSync writes what is pending and flushes the destination (what happens on exit)', async (t) => {
  const destination = new Recorder()
  const timer = manual()
  const batch = new LineBatch(destination, timer.schedule)
  batch.write('{"msg":"scopegate failed to start"}\n')
  batch.flushSync()
  t.same(destination.writes, ['{"msg":"scopegate failed to start"}\n'])
  t.equal(destination.flushes, 1)
  timer.due()
  t.equal(destination.writes.length, 1, 'the scheduled write finds nothing left to write')
})

t.test('flush (pino\'s logger.flush) writes what is pending at once and reports when the destination has', async (t) => {
  const destination = new Recorder()
  const timer = manual()
  const batch = new LineBatch(destination, timer.schedule)
  batch.write('a\n')
  await new Promise<void>((resolve) => { batch.flush(() => { resolve() }) })
  t.same(destination.writes, ['a\n'], 'written without waiting for the schedule')
  const flushed: string[] = []
  const withFlush = new LineBatch({ write: (chunk) => flushed.push(chunk), flush: (done) => { flushed.push('flushed'); done() } }, timer.schedule)
  withFlush.write('b\n')
  await new Promise<void>((resolve) => { withFlush.flush(() => { resolve() }) })
  t.same(flushed, ['b\n', 'flushed'], 'the destination flushed after the batch was written')
})

t.test('flushSync on a destination that cannot flush (closed) does not throw', async (t) => {
  const writes: string[] = []
  const batch = new LineBatch({ write: (chunk) => writes.push(chunk), flushSync: () => { throw new Error('SonicBoom destroyed') } })
  batch.write('a\n')
  t.doesNotThrow(() => { batch.flushSync() })
  t.same(writes, ['a\n'])
})

t.test('a process that exits writes its pending lines', async (t) => {
  // The built module (npm test builds first): a child writes a line through a batch to stdout and exits
  // in the same turn, before the batch's own write would have run.
  const module = new URL('../../dist/observability/line-batch.js', import.meta.url).href
  const script = `import { LineBatch } from ${JSON.stringify(module)}
const batch = new LineBatch({ write: (chunk) => process.stdout.write(chunk) })
batch.write('{"msg":"last words"}\\n')
process.exit(3)`
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 })
  t.equal(child.status, 3, child.stderr)
  t.equal(child.stdout, '{"msg":"last words"}\n')
})
