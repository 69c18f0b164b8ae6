/**
 * What tracing runs with, worked out once at start from the `telemetry.tracing` block and the standard
 * `OTEL_*` environment variables (docs/observability.md#configuration). The rule is OpenTelemetry's own for
 * a configuration file: a key written in the file wins over its variable; a variable fills in what the file
 * leaves out; the specification's default applies when neither says. `OTEL_SDK_DISABLED=true` turns tracing
 * off whatever the file says. A pure function of its inputs, with no OpenTelemetry import: the SDK is loaded
 * only once this says tracing is on.
 */
import type { CompiledTelemetry, TraceSampler } from '../config/types.js'
import { TRACE_SAMPLERS } from '../config/schema.js'

/** The environment, as `process.env` (injected by tests). */
export type Environment = Readonly<Record<string, string | undefined>>

export type OtlpProtocol = 'http/protobuf' | 'http/json'

export interface TracingSettings {
  /** The full URL spans are POSTed to (`…/v1/traces`). */
  url: string
  protocol: OtlpProtocol
  sampler: TraceSampler
  /** The ratio of the traceidratio samplers, 0 to 1. */
  ratio: number
  /** Resource attributes, `service.name` among them. */
  resource: Record<string, string>
}

/** Thrown for a variable scopegate cannot honour: a wrong guess would send spans nowhere without a word. */
export class TracingSettingsError extends Error {
  override readonly name = 'TracingSettingsError'
}

const DEFAULT_BASE = 'http://localhost:4318'

/** A value the specification says to treat as unset when empty. */
function variable (env: Environment, name: string): string | undefined {
  const value = env[name]?.trim()
  return value === undefined || value === '' ? undefined : value
}

/** `OTEL_EXPORTER_OTLP_ENDPOINT` and the file's `endpoint` are bases: the signal's path is appended. */
function tracesUrl (base: string): string {
  return `${base.replace(/\/+$/, '')}/v1/traces`
}

function protocolOf (env: Environment): OtlpProtocol {
  const protocol = variable(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? variable(env, 'OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf'
  if (protocol === 'http/protobuf' || protocol === 'http/json') return protocol
  throw new TracingSettingsError(`OTEL_EXPORTER_OTLP_PROTOCOL=${protocol} is not supported: use http/protobuf (the default, port 4318) or http/json`)
}

function samplerOf (tracing: CompiledTelemetry['tracing'], env: Environment): { sampler: TraceSampler, ratio: number } {
  const fromEnv = variable(env, 'OTEL_TRACES_SAMPLER')
  if (tracing.sampler === null && fromEnv !== undefined && !(TRACE_SAMPLERS as readonly string[]).includes(fromEnv)) {
    throw new TracingSettingsError(`OTEL_TRACES_SAMPLER=${fromEnv} is not supported: use one of ${TRACE_SAMPLERS.join(', ')}`)
  }
  const sampler = tracing.sampler ?? (fromEnv as TraceSampler | undefined) ?? 'parentbased_always_on'
  if (tracing.ratio !== null) return { sampler, ratio: tracing.ratio }
  const arg = variable(env, 'OTEL_TRACES_SAMPLER_ARG')
  if (arg === undefined || !sampler.endsWith('traceidratio')) return { sampler, ratio: 1 }
  const ratio = Number(arg)
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) throw new TracingSettingsError(`OTEL_TRACES_SAMPLER_ARG=${arg} is not a ratio between 0 and 1`)
  return { sampler, ratio }
}

/** `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs, comma-separated, percent-encoded (W3C Baggage octets). */
export function resourceAttributes (text: string | undefined): Record<string, string> {
  const attributes: Record<string, string> = {}
  for (const pair of (text ?? '').split(',')) {
    const at = pair.indexOf('=')
    if (at <= 0) continue
    try {
      attributes[decodeURIComponent(pair.slice(0, at).trim())] = decodeURIComponent(pair.slice(at + 1).trim())
    } catch {
      // A pair that is not valid percent-encoding is skipped, as the specification asks, not the whole list.
    }
  }
  return attributes
}

/**
 * The settings tracing runs with, or null when it is off (not enabled in the file, or `OTEL_SDK_DISABLED`).
 * @param identity Attributes scopegate sets itself (`service.version`, the worker); the file's and the
 *   variables' `service.name` still win.
 * @throws TracingSettingsError for a variable scopegate cannot honour.
 */
export function tracingSettings (telemetry: CompiledTelemetry, env: Environment, identity: Record<string, string> = {}): TracingSettings | null {
  const tracing = telemetry.tracing
  if (!tracing.enabled || variable(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return null
  const url = tracing.endpoint === null
    ? variable(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? tracesUrl(variable(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') ?? DEFAULT_BASE)
    : tracesUrl(tracing.endpoint)
  const fromEnv = resourceAttributes(variable(env, 'OTEL_RESOURCE_ATTRIBUTES'))
  const serviceName = tracing.serviceName ?? variable(env, 'OTEL_SERVICE_NAME') ?? fromEnv['service.name'] ?? 'scopegate'
  return {
    url,
    protocol: protocolOf(env),
    ...samplerOf(tracing, env),
    resource: { ...identity, ...fromEnv, 'service.name': serviceName }
  }
}
