/**
 * How the `telemetry.tracing` block and the `OTEL_*` variables combine (src/observability/tracing-settings.ts,
 * docs/observability.md#configuration): a key in the file wins over its variable, a variable fills in what
 * the file leaves out, the specification's default applies otherwise; `OTEL_SDK_DISABLED` turns tracing off.
 */
import t from 'tap'
import type { CompiledTelemetry } from '../../src/config/types.js'
import { resourceAttributes, tracingSettings, TracingSettingsError, type Environment } from '../../src/observability/tracing-settings.js'
import { compileTestConfig } from '../helpers/gateway.js'

const MINIMAL = {
  issuers: [{ id: 'idp', issuer: 'https://idp/', jwksUri: 'https://idp/jwks', algorithms: ['RS256'], audiences: ['api'] }],
  upstreams: { todo: { url: 'http://todo:3000' } },
  routes: [{ id: 'r', match: { path: '/todos' }, upstream: 'todo' }]
}

const telemetryOf = (block: Record<string, unknown>): CompiledTelemetry => compileTestConfig({ ...MINIMAL, telemetry: block }).telemetry

t.test('tracing is off unless the config enables it; OTEL_SDK_DISABLED=true turns it off anyway', async (t) => {
  t.equal(tracingSettings(telemetryOf({}), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), null, 'variables alone do not turn it on')
  t.not(tracingSettings(telemetryOf({ tracing: { enabled: true } }), {}), null)
  t.equal(tracingSettings(telemetryOf({ tracing: { enabled: true } }), { OTEL_SDK_DISABLED: 'TRUE' }), null)
  t.not(tracingSettings(telemetryOf({ tracing: { enabled: true } }), { OTEL_SDK_DISABLED: 'false' }), null)
})

const on = { enabled: true }
const cases: Array<[string, Record<string, unknown>, Environment, Partial<ReturnType<typeof tracingSettings>>]> = [
  ['defaults', on, {}, { url: 'http://localhost:4318/v1/traces', protocol: 'http/protobuf', sampler: 'parentbased_always_on', ratio: 1 }],
  ['the base endpoint variable gets /v1/traces', on, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }, { url: 'http://collector:4318/v1/traces' }],
  ['the traces endpoint variable is used as is, over the base one', on,
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' }, { url: 'http://b:4318/custom' }],
  ['the file\'s endpoint wins over both variables', { ...on, endpoint: 'https://c.example:4318' },
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/x' }, { url: 'https://c.example:4318/v1/traces' }],
  ['http/json by variable', on, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, { protocol: 'http/json' }],
  ['the traces protocol variable wins over the general one', on,
    { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }, { protocol: 'http/protobuf' }],
  ['sampler and ratio from the variables', on, { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' },
    { sampler: 'parentbased_traceidratio', ratio: 0.25 }],
  ['the argument is ignored by a sampler that reads none', on, { OTEL_TRACES_SAMPLER: 'always_on', OTEL_TRACES_SAMPLER_ARG: '0.25' }, { sampler: 'always_on', ratio: 1 }],
  ['the file\'s ratio alone means the parent-based ratio sampler, over the variables', { ...on, ratio: 0.1 },
    { OTEL_TRACES_SAMPLER: 'always_off', OTEL_TRACES_SAMPLER_ARG: '0.9' }, { sampler: 'parentbased_traceidratio', ratio: 0.1 }],
  ['the file\'s sampler with the variable\'s ratio', { ...on, sampler: 'traceidratio' }, { OTEL_TRACES_SAMPLER_ARG: '0.5' }, { sampler: 'traceidratio', ratio: 0.5 }],
  ['empty variables are unset', on, { OTEL_EXPORTER_OTLP_ENDPOINT: ' ', OTEL_TRACES_SAMPLER: '' }, { url: 'http://localhost:4318/v1/traces', sampler: 'parentbased_always_on' }]
]

t.test('the file wins, the variables fill in, the defaults last', async (t) => {
  for (const [name, tracing, env, expected] of cases) {
    t.match(tracingSettings(telemetryOf({ tracing }), env), expected, name)
  }
})

t.test('the service name and resource attributes', async (t) => {
  const resource = (tracing: Record<string, unknown>, env: Environment): Record<string, string> | undefined =>
    tracingSettings(telemetryOf({ tracing }), env, { 'service.version': '1.2.3', 'service.name': 'never' })?.resource
  t.same(resource(on, {}), { 'service.version': '1.2.3', 'service.name': 'scopegate' })
  t.same(resource(on, { OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs,k8s.pod.name=gw-1' }),
    { 'service.version': '1.2.3', 'service.name': 'from-attrs', 'k8s.pod.name': 'gw-1' })
  t.equal(resource(on, { OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs', OTEL_SERVICE_NAME: 'from-var' })?.['service.name'], 'from-var')
  t.equal(resource({ ...on, serviceName: 'from-file' }, { OTEL_SERVICE_NAME: 'from-var' })?.['service.name'], 'from-file')
})

t.test('OTEL_RESOURCE_ATTRIBUTES: percent-decoded, bad pairs skipped, not the whole list', async (t) => {
  t.same(resourceAttributes('a=1, b = two%20words ,c,=x,d=%E0%A4%A,e=ok'), { a: '1', b: 'two words', e: 'ok' })
  t.same(resourceAttributes(undefined), {})
})

t.test('a variable scopegate cannot honour is an error at start, not a silent loss of spans', async (t) => {
  const enabled = telemetryOf({ tracing: on })
  t.throws(() => tracingSettings(enabled, { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), TracingSettingsError)
  t.throws(() => tracingSettings(enabled, { OTEL_TRACES_SAMPLER: 'jaeger_remote' }), /not supported/)
  t.throws(() => tracingSettings(enabled, { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }), /not a ratio/)
  t.throws(() => tracingSettings(enabled, { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'half' }), /not a ratio/)
  t.doesNotThrow(() => tracingSettings(telemetryOf({ tracing: { ...on, sampler: 'always_on' } }), { OTEL_TRACES_SAMPLER: 'bogus' }), 'the file\'s sampler wins')
})

t.test('the telemetry block is validated with its config path', async (t) => {
  const problems = (block: Record<string, unknown>): string => {
    try {
      compileTestConfig({ ...MINIMAL, telemetry: block })
      return ''
    } catch (err) {
      return JSON.stringify((err as { problems?: unknown }).problems ?? (err as Error).message)
    }
  }
  t.match(problems({ tracing: { enabled: true, sampler: 'always_on', ratio: 0.5 } }), /telemetry\.tracing\.ratio.*traceidratio/)
  t.match(problems({ tracing: { endpoint: 'collector:4318' } }), /telemetry\.tracing\.endpoint/)
  t.match(problems({ tracing: { ratio: 1.5 } }), /telemetry\.tracing\.ratio/)
  t.match(problems({ tracing: { sampler: 'sometimes' } }), /telemetry\.tracing\.sampler/)
  t.match(problems({ propagation: { trust: 'maybe' } }), /telemetry\.propagation\.trust/)
  t.match(problems({ tracing: { enabled: true, exporter: 'zipkin' } }), /telemetry\.tracing/)
  t.equal(problems({ tracing: { enabled: true, sampler: 'parentbased_traceidratio', ratio: 0 } }), '', 'a ratio of 0 is fine')
  t.same(telemetryOf({}), { tracing: { enabled: false, endpoint: null, sampler: null, ratio: null, serviceName: null }, propagation: { trust: 'trusted' } })
})
