/**
 * A route's forward-auth caching settings (docs/forward-auth.md, "Caching decisions"), compiled once:
 * how long an ingress may keep a denial that depends on its cache key alone. Whole seconds, because
 * `s-maxage` has no finer unit; at most the allows' cap, so that a denial never outlives what an allow
 * could; 0 when `cacheHints: false` turns every hint off.
 */
import type { RawForwardAuth } from './types.js'
import { parseDuration } from '../shared/duration.js'

type AddProblem = (path: string, message: string) => void

/**
 * Longest an allow may be cached by the ingress, seconds: a config reload or key rotation shows within it.
 * Also the longest `denialCache`, so that a denial never outlives what an allow could.
 */
export const FORWARD_AUTH_CACHE_MAX_SECONDS = 60

/** When the route sets no `forwardAuth` block: the schema's default. */
const DENIAL_CACHE_DEFAULT_SECONDS = 5

/** `forwardAuth.denialCache` in whole seconds; 0: denials are never cached on this route. */
export function denialCacheSeconds (raw: RawForwardAuth | undefined, path: string, problem: AddProblem): number {
  if (raw === undefined) return DENIAL_CACHE_DEFAULT_SECONDS
  let ms: number
  try {
    ms = parseDuration(raw.denialCache)
  } catch (err) {
    problem(path, (err as Error).message)
    return 0
  }
  if (ms % 1000 !== 0) problem(path, 'must be a whole number of seconds (Cache-Control counts in seconds)')
  if (ms > FORWARD_AUTH_CACHE_MAX_SECONDS * 1000) problem(path, `must be at most ${FORWARD_AUTH_CACHE_MAX_SECONDS}s`)
  return raw.cacheHints ? Math.floor(ms / 1000) : 0
}
