/**
 * A config reload, whatever asked for it (SIGHUP, a change of the file, a cluster primary): read and check
 * the file; hand a valid config to `apply`, which swaps it in; log every problem of an invalid one and
 * keep the config in force. Each attempt is counted once, as `ok` or `error`.
 *
 * Reloads run one at a time, in the order asked; requests made while one runs are served by a single
 * further reload, since it reads the file as it is by then.
 */
import type { Logger } from 'pino'
import type { ReloadResult } from '../observability/metrics.js'
import { problemsOf } from './problems.js'
import { loadConfig } from './load.js'
import type { CompiledConfig, CompiledTls } from './types.js'

export interface ReloaderOptions {
  file: string
  logger: Logger
  /** The config in force, to tell which start-up-only settings a new one changes. */
  current: () => CompiledConfig
  /** Puts a checked config in force. Returns false if it refused it, having logged why. */
  apply: (config: CompiledConfig) => boolean | Promise<boolean>
  /** Counts each attempt (`config_reloads_total`). Absent where another process counts (cluster workers). */
  count?: (result: ReloadResult) => void
  /** Checks beyond the file itself (a cluster primary reads the re-issue key files). Throws ConfigError. */
  check?: (config: CompiledConfig) => Promise<void>
  /** Warn about changed start-up-only settings. Default true; cluster workers leave it to the primary. */
  warnRestart?: boolean
}

function sameTls (a: CompiledTls | null, b: CompiledTls | null): boolean {
  if (a === null || b === null) return a === b
  return a.cert === b.cert && a.key === b.key && a.clientCa === b.clientCa && a.clientCertificate === b.clientCertificate && a.minVersion === b.minVersion
}

/**
 * Settings read once, when the listeners are built: a reload that changes them is applied for
 * everything else and they keep their old values until a restart.
 */
export function restartOnlyChanges (before: CompiledConfig, after: CompiledConfig): string[] {
  const a = before.server
  const b = after.server
  const changed: string[] = []
  if (a.proxy.host !== b.proxy.host || a.proxy.port !== b.proxy.port) changed.push('server.proxy')
  if (a.admin.host !== b.admin.host || a.admin.port !== b.admin.port) changed.push('server.admin')
  // Which files and modes a listener's TLS uses, and h2, are fixed when it opens; the files' content is re-read.
  if (a.proxy.http2 !== b.proxy.http2 || !sameTls(a.proxy.tls, b.proxy.tls)) changed.push('server.proxy.tls')
  if (!sameTls(a.admin.tls, b.admin.tls)) changed.push('server.admin.tls')
  if (a.workers !== b.workers) changed.push('server.workers')
  if (a.requestTimeoutMs !== b.requestTimeoutMs) changed.push('server.requestTimeout')
  if (a.maxHeaderSize !== b.maxHeaderSize) changed.push('server.maxHeaderSize')
  return changed
}

export class ConfigReloader {
  private readonly options: ReloaderOptions
  private running: Promise<boolean> | null = null
  private queued: Promise<boolean> | null = null

  constructor (options: ReloaderOptions) {
    this.options = options
  }

  /** Reload now, or right after the reload under way. Resolves true when the new config is in force. */
  reload (trigger: string): Promise<boolean> {
    if (this.running === null) {
      this.running = this.attempt(trigger).finally(() => { this.running = null })
      return this.running
    }
    this.queued ??= this.running.then(() => {
      this.queued = null
      return this.reload(trigger)
    })
    return this.queued
  }

  private async attempt (trigger: string): Promise<boolean> {
    const { file, logger, count } = this.options
    let next: CompiledConfig
    try {
      next = await loadConfig(file)
      await this.options.check?.(next)
    } catch (err) {
      logger.error({ config: file, trigger, problems: problemsOf(err) }, 'config reload failed; the previous config stays in force')
      count?.('error')
      return false
    }
    const restartOnly = restartOnlyChanges(this.options.current(), next)
    if (!await this.options.apply(next)) {
      count?.('error')
      return false
    }
    count?.('ok')
    logger.info({ config: file, trigger }, 'config reloaded')
    if (restartOnly.length > 0 && this.options.warnRestart !== false) {
      logger.warn({ config: file, settings: restartOnly },
        'these settings take effect only after a restart; the running listeners keep their previous values')
    }
    return true
  }
}
