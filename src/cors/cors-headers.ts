/**
 * CORS per the Fetch standard (docs/cors.md), as pure functions of a route's compiled `cors` and the
 * request's `Origin`: whether an origin is allowed, the answer to a preflight, and the fields every actual
 * response carries (denials included, so a browser app can read a 401 and refresh its token).
 *
 * An origin outside the list gets no `Access-Control-*` field at all: the browser then refuses the
 * response to the page, which is the whole of CORS's protection. Every response of a CORS route says
 * `Vary: Origin`, since what it carries depends on that header. `*` is answered only by a route whose
 * origins are `*` and that does not allow credentials (the config refuses the two together).
 */

/** A route's `cors`, compiled once at load (`config/compile.ts`). */
export interface CompiledCors {
  /** `*` listed: every origin (never with credentials). */
  anyOrigin: boolean
  /** Exact origins, lower-case: `https://app.example.com`. */
  origins: ReadonlySet<string>
  /** `https://*.example.com`: the scheme with `://`, and the suffix with its leading dot (and port, if any). */
  patterns: ReadonlyArray<{ scheme: string, suffix: string }>
  /** Upper-case methods a preflight may ask for. */
  methods: ReadonlySet<string>
  /** Lower-case request header names a preflight may ask for. */
  headers: ReadonlySet<string>
  credentials: boolean
  /** The fields, rendered once. */
  allowMethods: string
  allowHeaders: string
  exposeHeaders: string
  /** Seconds. */
  maxAge: number
}

/** Characters an origin's host part may not hold between the scheme and the pattern's suffix. */
const NOT_A_LABEL_RUN = /[/:@?#\s]/

/** Whether `origin` (the request's `Origin` value) may read this route's responses. */
export function originAllowed (cors: CompiledCors, origin: string): boolean {
  if (cors.anyOrigin) return true
  const lower = origin.toLowerCase()
  if (cors.origins.has(lower)) return true
  for (const { scheme, suffix } of cors.patterns) {
    if (!lower.startsWith(scheme) || !lower.endsWith(suffix)) continue
    // One label or more, before the suffix: `a.example.com` and `a.b.example.com`, never `example.com`.
    const labels = lower.slice(scheme.length, lower.length - suffix.length)
    if (labels !== '' && !NOT_A_LABEL_RUN.test(labels) && !labels.startsWith('.') && !labels.endsWith('.')) return true
  }
  return false
}

/** The `Access-Control-Allow-Origin` value for an allowed origin. */
function allowOrigin (cors: CompiledCors, origin: string): string {
  return cors.anyOrigin && !cors.credentials ? '*' : origin
}

/**
 * The fields of an actual response (an allow or a denial) on a CORS route. `origin` undefined: not a CORS
 * request, only `Vary`.
 */
export function responseCorsHeaders (cors: CompiledCors, origin: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { vary: 'Origin' }
  if (origin === undefined || !originAllowed(cors, origin)) return headers
  headers['access-control-allow-origin'] = allowOrigin(cors, origin)
  if (cors.credentials) headers['access-control-allow-credentials'] = 'true'
  if (cors.exposeHeaders !== '') headers['access-control-expose-headers'] = cors.exposeHeaders
  return headers
}

/** The methods a browser sends without asking (CORS-safelisted methods). */
const SAFELISTED_METHODS = new Set(['GET', 'HEAD', 'POST'])

/**
 * The answer to a preflight: the fields of a 204 that lets the browser go on, or only `Vary` when the
 * origin, the method or one of the headers is not allowed (the browser then fails the request, and learns
 * nothing of the route's policy).
 */
export function preflightCorsHeaders (cors: CompiledCors, origin: string, requestMethod: string, requestHeaders: string | undefined): Record<string, string> {
  const refused = { vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers' }
  if (!originAllowed(cors, origin)) return refused
  if (!cors.methods.has(requestMethod) && !SAFELISTED_METHODS.has(requestMethod)) return refused
  if (requestHeaders !== undefined) {
    for (const name of requestHeaders.split(',')) {
      const header = name.trim().toLowerCase()
      if (header !== '' && !cors.headers.has(header)) return refused
    }
  }
  const headers: Record<string, string> = {
    ...refused,
    'access-control-allow-origin': allowOrigin(cors, origin),
    'access-control-allow-methods': cors.allowMethods,
    'access-control-max-age': String(cors.maxAge)
  }
  if (cors.allowHeaders !== '') headers['access-control-allow-headers'] = cors.allowHeaders
  if (cors.credentials) headers['access-control-allow-credentials'] = 'true'
  return headers
}

/**
 * An upstream's response headers on a CORS route: its own `Access-Control-*` fields are dropped (the
 * route's `cors` decides, so an upstream cannot widen it), the route's are added, and `Origin` joins its `Vary`.
 */
export function upstreamCorsHeaders<T extends Record<string, unknown>> (headers: T, cors: CompiledCors, origin: string | undefined): T {
  const result: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(headers)) if (!name.toLowerCase().startsWith('access-control-')) result[name] = value
  const vary = typeof result.vary === 'string' ? result.vary : ''
  Object.assign(result, responseCorsHeaders(cors, origin))
  if (vary !== '') result.vary = vary === '*' || /(^|,)\s*origin\s*(,|$)/i.test(vary) ? vary : `${vary}, Origin`
  return result as T
}
