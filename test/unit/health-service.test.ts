/**
 * The gRPC health service's Watch bookkeeping (`src/grpc/health-service.ts`), with readiness answered by
 * the test: a status is sent only when it changes, a slow readiness read never overwrites a later one's
 * answer (a cluster worker asks its group, over IPC, and the shutdown read answers at once), a failed read
 * is NOT_SERVING, and closing ends every watch. The end-to-end behaviour over a real gRPC connection is
 * in test/grpc/ext-authz-health.test.ts.
 */
import { EventEmitter } from 'node:events'
import type * as grpc from '@grpc/grpc-js'
import t from 'tap'
import { HealthService } from '../../src/grpc/health-service.js'

/** A server-streaming call as the handler uses it: the request, write, end, and the cancelled flag. */
class FakeWatch extends EventEmitter {
  readonly written: string[] = []
  ended = false
  cancelled = false
  constructor (readonly request: { service: string }) { super() }
  write (message: { status: string }): boolean { this.written.push(message.status); return true }
  end (): void { this.ended = true }
}

/** Readiness reads the test resolves one by one, in the order it chooses. */
function readiness (): { ready: () => Promise<boolean>, pending: Array<(ready: boolean | Error) => void> } {
  const pending: Array<(ready: boolean | Error) => void> = []
  return {
    pending,
    ready: () => new Promise<boolean>((resolve, reject) => {
      pending.push((ready) => { if (ready instanceof Error) reject(ready); else resolve(ready) })
    })
  }
}

const flush = async (): Promise<void> => { for (let i = 0; i < 5; i++) await Promise.resolve() }

function watch (service: HealthService, name = ''): FakeWatch {
  const call = new FakeWatch({ service: name })
  const handler = service.handlers().Watch as (call: grpc.ServerWritableStream<unknown, unknown>) => void
  handler(call as unknown as grpc.ServerWritableStream<unknown, unknown>)
  return call
}

t.test('a status is sent at once, then only when it changes; a slow read never overwrites a later one', async (t) => {
  const reads = readiness()
  const service = new HealthService({ ready: reads.ready, watchIntervalMs: 60_000 })
  const call = watch(service)
  reads.pending.shift()?.(true)
  await flush()
  t.same(call.written, ['SERVING'], 'the status at once')
  void service.refresh()
  reads.pending.shift()?.(true)
  await flush()
  t.same(call.written, ['SERVING'], 'unchanged: nothing sent')

  // A slow read starts, then shutdown's read answers first: the slow one's late answer is dropped.
  const slow = service.refresh()
  const fast = service.refresh()
  const [slowRead, fastRead] = reads.pending.splice(0, 2)
  fastRead?.(false)
  await fast
  slowRead?.(true)
  await slow
  t.same(call.written, ['SERVING', 'NOT_SERVING'], 'NOT_SERVING stays: the earlier read\'s SERVING came too late')
  service.close()
})

t.test('a failed read is NOT_SERVING; an unknown name is told once; close ends every watch', async (t) => {
  const reads = readiness()
  const service = new HealthService({ ready: reads.ready, watchIntervalMs: 60_000 })
  const known = watch(service, 'envoy.service.auth.v3.Authorization')
  const unknown = watch(service, 'nope')
  reads.pending.shift()?.(new Error('the group did not answer'))
  await flush()
  t.same(known.written, ['NOT_SERVING'])
  t.same(unknown.written, ['SERVICE_UNKNOWN'])
  void service.refresh()
  reads.pending.shift()?.(true)
  await flush()
  t.same(known.written, ['NOT_SERVING', 'SERVING'])
  t.same(unknown.written, ['SERVICE_UNKNOWN'], 'nothing more for an unknown name')
  service.close()
  t.same(known.written, ['NOT_SERVING', 'SERVING', 'NOT_SERVING'], 'closing says NOT_SERVING first')
  t.ok(known.ended && unknown.ended, 'and ends every watch')
  t.equal(reads.pending.length, 0, 'no read left waiting')
})

t.test('a cancelled watch is forgotten and sent nothing', async (t) => {
  const reads = readiness()
  const service = new HealthService({ ready: reads.ready, watchIntervalMs: 60_000 })
  const call = watch(service)
  call.cancelled = true
  call.emit('cancelled')
  reads.pending.shift()?.(true)
  await flush()
  t.same(call.written, [])
  service.close()
  t.notOk(call.ended, 'not ended again by close: it is gone')
})

t.test('at most 100 watches at once: the next is ended RESOURCE_EXHAUSTED, and a freed slot is usable again', async (t) => {
  const reads = readiness()
  const service = new HealthService({ ready: reads.ready, watchIntervalMs: 60_000 })
  const open = Array.from({ length: 100 }, () => watch(service))
  const errors: Array<{ code: number }> = []
  const extra = new FakeWatch({ service: '' })
  extra.on('error', (err: { code: number }) => { errors.push(err) })
  const handler = service.handlers().Watch as (call: grpc.ServerWritableStream<unknown, unknown>) => void
  handler(extra as unknown as grpc.ServerWritableStream<unknown, unknown>)
  t.same(errors.map((e) => e.code), [8], 'RESOURCE_EXHAUSTED')
  open[0]?.emit('cancelled')
  const again = watch(service)
  for (const resolve of reads.pending.splice(0)) resolve(true)
  await flush()
  t.same(again.written, ['SERVING'], 'a slot freed by a cancelled watch is used again')
  service.close()
})
