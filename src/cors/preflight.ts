/**
 * Recognizing a CORS preflight (docs/cors.md): `OPTIONS` with `Origin` and `Access-Control-Request-Method`,
 * on a path whose route for the method it asks about has `cors`. Such a request carries no credentials
 * (browsers never send them on a preflight), so it is answered without a token and never forwarded.
 * Anything else (no such route, a route without `cors`, a path with no canonical form) is decided as an
 * ordinary request.
 */
import type { CompiledRoute } from '../config/types.js'
import { normalizeTarget } from '../request/normalize-path.js'
import { requestHost } from '../routing/match-host.js'
import type { RouteTable } from '../routing/route-table.js'
import { preflightCorsHeaders } from './cors-headers.js'

export interface PreflightAnswer {
  route: CompiledRoute
  path: string
  /** The fields of the 204: the CORS grant, or only `Vary` when refused. */
  headers: Record<string, string>
}

/** The answer to a preflight, or null when the request is not one scopegate answers. `host`: the Host header. */
export function answerPreflight (routes: RouteTable, method: string, target: string, origin: string | undefined,
  requestMethod: string | undefined, requestHeaders: string | undefined, host?: string): PreflightAnswer | null {
  if (method !== 'OPTIONS' || origin === undefined || requestMethod === undefined) return null
  let path: string
  try {
    path = normalizeTarget(target).path
  } catch {
    return null
  }
  const route = routes.match(requestMethod, path, requestHost(host))
  if (route === null || route.cors === null) return null
  return { route, path, headers: preflightCorsHeaders(route.cors, origin, requestMethod, requestHeaders) }
}
