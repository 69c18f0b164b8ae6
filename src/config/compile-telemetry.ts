/**
 * Compiles the `telemetry` block (docs/observability.md#tracing). Keys the file leaves out stay null, so
 * the tracing set-up can fill them from their `OTEL_*` variables: a key in the file wins over its variable.
 */
import type { CompiledTelemetry, RawTelemetry } from './types.js'

type AddProblem = (path: string, message: string) => void

export function compileTelemetry (raw: RawTelemetry, problem: AddProblem): CompiledTelemetry {
  const { enabled, endpoint, sampler, ratio, serviceName } = raw.tracing
  // A ratio beside a sampler that reads none would be ignored without a word: refused instead.
  if (ratio !== undefined && sampler !== undefined && !sampler.endsWith('traceidratio')) {
    problem('telemetry.tracing.ratio', `applies only to the traceidratio samplers, not ${sampler}`)
  }
  return {
    tracing: {
      enabled,
      endpoint: endpoint ?? null,
      // A ratio alone means the usual parent-based ratio sampler.
      sampler: sampler ?? (ratio === undefined ? null : 'parentbased_traceidratio'),
      ratio: ratio ?? null,
      serviceName: serviceName ?? null
    },
    propagation: { trust: raw.propagation.trust }
  }
}
