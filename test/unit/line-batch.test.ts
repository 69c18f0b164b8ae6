/**
 * Log lines are gathered over one turn of the event loop and written as one (src/observability/line-batch.ts):
 * none lost, none reordered, none held past the turn, a large batch written at once, and the pending
 * lines written and flushed on exit.
 */
import { spawnSync } from 'node:child_process'
import { setImmediate as nextTurn } from 'node:timers/promises'
import t from 'tap'
import { LineBatch } from '../../src/observability/line-batch.js'

class Recorder {
  writes: string[] = []
  flushes = 0
  write (chunk: string): boolean { this.writes.push(chunk); return true }
  flushSync (): void { this.flushes++ }
}

t.test('the lines of one turn go out as one write, in order, at the end of that turn', async (t) => {
  const destination = new Recorder()
  const batch = new LineBatch(destination)
  for (let i = 0; i < 5; i++) batch.write(`{"n":${i}}\n`)
  t.same(destination.writes, [], 'nothing written during the turn')
  await nextTurn()
  t.same(destination.writes, ['{"n":0}\n{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n'])
  batch.write('{"n":5}\n')
  await nextTurn()
  t.same(destination.writes.slice(1), ['{"n":5}\n'], 'the next turn is a batch of its own')
  await nextTurn()
  t.equal(destination.writes.length, 2, 'an empty turn writes nothing')
})

t.test('a batch of 64 KiB is written at once, without waiting for the turn to end', async (t) => {
  const destination = new Recorder()
  const batch = new LineBatch(destination)
  const line = `${'x'.repeat(1023)}\n`
  for (let i = 0; i < 64; i++) batch.write(line)
  t.equal(destination.writes.length, 1, 'written when the 64th KiB arrived')
  t.equal(destination.writes[0]?.length, 64 * 1024)
  batch.write(line)
  await nextTurn()
  t.same(destination.writes.map((w) => w.length), [64 * 1024, 1024], 'the rest follows at the end of the turn')
})

t.test('flushSync writes what is pending and flushes the destination (what happens on exit)', async (t) => {
  const destination = new Recorder()
  const batch = new LineBatch(destination)
  batch.write('{"msg":"scopegate failed to start"}\n')
  batch.flushSync()
  t.same(destination.writes, ['{"msg":"scopegate failed to start"}\n'])
  t.equal(destination.flushes, 1)
  await nextTurn()
  t.equal(destination.writes.length, 1, 'the scheduled end of turn finds nothing left to write')
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
