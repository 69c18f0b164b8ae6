/**
 * deploy/observability/otel-collector.yaml, the collector the compose observability profile mounts
 * (docs/observability.md#tracing), checked statically: it parses, every component a pipeline or the
 * service names is defined and every one defined is used, each is a core component (so the core
 * distribution runs it, as the contrib one does), the OTLP receiver listens for HTTP on 4318 (where
 * scopegate's exporter posts by default), memory_limiter comes first and batch last, and the traces reach
 * Jaeger over OTLP.
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'

type Obj = Record<string, any>

const FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'deploy', 'observability', 'otel-collector.yaml')

/** Component types of the core collector distribution, by section (`type/name` names one of a type). */
const CORE: Record<string, Set<string>> = {
  receivers: new Set(['otlp']),
  processors: new Set(['batch', 'memory_limiter']),
  exporters: new Set(['otlp', 'otlphttp', 'debug']),
  extensions: new Set(['health_check', 'zpages'])
}

const typeOf = (id: string): string => id.split('/')[0] ?? ''

t.test('the collector config is consistent', async (t) => {
  const config = parse(readFileSync(FILE, 'utf8')) as Obj
  const pipelines = config.service?.pipelines as Record<string, Obj>
  t.same(Object.keys(pipelines), ['traces'], 'one pipeline: traces')

  for (const section of ['receivers', 'processors', 'exporters'] as const) {
    const defined = Object.keys(config[section] ?? {})
    const used = new Set(Object.values(pipelines).flatMap((p) => p[section] as string[]))
    for (const id of used) t.ok(defined.includes(id), `${section}: ${id} is defined`)
    for (const id of defined) {
      t.ok(used.has(id), `${section}: ${id} is used by a pipeline`)
      t.ok(CORE[section]?.has(typeOf(id)), `${section}: ${id} is a core component`)
    }
  }
  const extensions = config.service.extensions as string[]
  for (const id of extensions) {
    t.ok(id in (config.extensions ?? {}), `extension ${id} is defined`)
    t.ok(CORE.extensions?.has(typeOf(id)), `extension ${id} is a core component`)
  }

  const traces = pipelines.traces as Obj
  t.equal(traces.processors[0], 'memory_limiter', 'memory_limiter first, as the collector recommends')
  t.equal(traces.processors.at(-1), 'batch', 'batch last')
  t.same(Object.keys(config.receivers.otlp.protocols), ['http'], 'OTLP over HTTP only: what scopegate exports')
  t.match(config.receivers.otlp.protocols.http.endpoint, /:4318$/, 'on 4318, the OTLP/HTTP port scopegate posts to by default')
  const [exporter] = traces.exporters as string[]
  t.equal(typeOf(exporter ?? ''), 'otlp', 'Jaeger is reached over OTLP')
  t.match(config.exporters[exporter ?? ''].endpoint, /^jaeger:4317$/, 'Jaeger\'s OTLP/gRPC port')
})
