/**
 * Reading what a test gateway exported to the OTLP receiver (otlp-receiver.ts): flushes until the spans a
 * test waits for are there, bounded in rounds, and the filters the tracing tests share.
 */
import type { TestGateway } from '../helpers/gateway.js'
import { SPAN_KIND, type OtlpReceiver, type ReceivedSpan } from './otlp-receiver.js'

/** Waits, flush by flush, until `ready` holds: at most 100 rounds of 20 ms (a server span ends after the answer is sent). */
export async function exported (gw: TestGateway, receiver: OtlpReceiver, ready: (spans: ReceivedSpan[]) => boolean): Promise<ReceivedSpan[]> {
  for (let round = 0; round < 100; round++) {
    await gw.gateway.tracing.flush()
    if (ready(receiver.spans)) return receiver.spans
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return receiver.spans
}

/** The spans of trace `traceId`. */
export const inTrace = (spans: ReceivedSpan[], traceId: string): ReceivedSpan[] => spans.filter((s) => s.traceId === traceId)
/** The spans called `name`. */
export const named = (spans: ReceivedSpan[], name: string): ReceivedSpan[] => spans.filter((s) => s.name === name)
/** The first server span. */
export const serverSpan = (spans: ReceivedSpan[]): ReceivedSpan | undefined => spans.find((s) => s.kind === SPAN_KIND.server)
