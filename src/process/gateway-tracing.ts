/**
 * The gateway's tracing, as the rest of the process sees it: off (the default, nothing loaded), or the
 * `Tracing` of `observability/tracing.ts`, loaded by a dynamic import when the config enables it and the
 * `OTEL_*` variables do not disable it (docs/observability.md#tracing). Each process (each worker) runs its
 * own and exports its own spans, named by the `scopegate.worker` and `service.instance.id` resource attributes.
 */
import { randomUUID } from 'node:crypto'
import cluster from 'node:cluster'
import { createRequire } from 'node:module'
import type { Logger } from 'pino'
import type { CompiledConfig, CompiledIssuer } from '../config/types.js'
import type { FetchLike } from '../keys/fetch-json.js'
import type { Tracing } from '../observability/tracing.js'
import { tracingSettings, type Environment } from '../observability/tracing-settings.js'
import { WORKER_ENV } from './cluster-ipc.js'

/** scopegate's version, from package.json (two levels up from `src/process/` and from `dist/process/` alike). */
function version (): string {
  try {
    return (createRequire(import.meta.url)('../../package.json') as { version: string }).version
  } catch {
    return 'unknown'
  }
}

export class GatewayTracing {
  private readonly env: Environment
  /** Null until started, and for good when tracing is off. */
  current: Tracing | null = null

  constructor (env: Environment) {
    this.env = env
  }

  /** Resource attributes of this process: the version, and which worker it is. */
  private identity (): Record<string, string> {
    const slot = this.env[WORKER_ENV]
    return {
      'service.version': version(),
      'service.instance.id': randomUUID(),
      ...(cluster.isWorker && slot !== undefined ? { 'scopegate.worker': slot } : {})
    }
  }

  /** Loads and starts tracing when the config enables it; null when it stays off. @throws TracingSettingsError */
  async start (config: CompiledConfig, logger: Logger): Promise<Tracing | null> {
    const settings = tracingSettings(config.telemetry, this.env, this.identity())
    if (settings === null) {
      if (config.telemetry.tracing.enabled) logger.info('tracing is enabled in the config but OTEL_SDK_DISABLED=true: it stays off')
      return null
    }
    const { startTracing } = await import('../observability/tracing.js')
    this.current = await startTracing(settings, config.telemetry.propagation.trust)
    logger.info({ endpoint: settings.url, protocol: settings.protocol, sampler: settings.sampler, ratio: settings.ratio }, 'tracing on')
    return this.current
  }

  /**
   * The fetch of one issuer's key stores and introspection client, each call in a span once tracing runs
   * (the stores are built before it starts, and fetch only after); `base`, when given, is the fetch it
   * wraps (a cluster worker's, through its primary).
   */
  fetchFor (fetch: FetchLike | undefined, base?: (issuer: CompiledIssuer) => FetchLike): (issuer: CompiledIssuer) => FetchLike {
    return (issuer) => {
      const inner = base?.(issuer) ?? fetch ?? (globalThis.fetch as FetchLike)
      let traced: FetchLike | null = null
      return async (url, init) => {
        traced ??= this.current?.fetchFor(issuer, inner) ?? null
        return await (traced ?? inner)(url, init)
      }
    }
  }

  /** Exports every span ended so far (tests; nothing when tracing is off). */
  async flush (): Promise<void> {
    await this.current?.flush()
  }

  /** Exports what is left, within `timeoutMs`, and stops. */
  async shutdown (timeoutMs: number): Promise<void> {
    await this.current?.shutdown(timeoutMs)
  }
}
