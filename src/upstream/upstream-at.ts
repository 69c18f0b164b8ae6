/**
 * The upstream a connection is for, found by origin: connectors (`connector.ts`) and HTTP/2 sessions
 * (`h2-sessions.ts`) are asked for an origin, not an upstream. One map per compiled config, built on
 * first use; `compile.ts` guarantees upstreams sharing an origin connect alike, so the first one serves.
 */
import type { CompiledConfig, CompiledUpstream } from '../config/types.js'

const byConfig = new WeakMap<CompiledConfig, ReadonlyMap<string, CompiledUpstream>>()

/** The upstream of `config` at `origin` (`https://host:port` as `URL.origin` writes it), if any. */
export function upstreamAt (config: CompiledConfig, origin: string): CompiledUpstream | undefined {
  let map = byConfig.get(config)
  if (map === undefined) {
    const built = new Map<string, CompiledUpstream>()
    for (const upstream of config.upstreams.values()) if (!built.has(upstream.origin)) built.set(upstream.origin, upstream)
    map = built
    byConfig.set(config, map)
  }
  return map.get(origin)
}
