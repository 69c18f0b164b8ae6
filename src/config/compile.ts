/**
 * Turns a validated `RawConfig` into the `CompiledConfig` the request path reads, and checks what a
 * schema cannot: references between sections, ambiguous routes, CIDRs, URLs, normalized paths. All
 * problems are collected and reported at once, each with its path. The result is deep-frozen: a reload
 * builds a new one and swaps a single reference.
 */
import { availableParallelism } from 'node:os'
import { parseDuration } from '../shared/duration.js'
import { isPlainObject } from '../shared/is-plain-object.js'
import { compileIpMatcher, type IpMatcher } from '../net/ip-matcher.js'
import { normalizeTarget } from '../request/normalize-path.js'
import { compileStrippedHeaders } from '../forward/strip-headers.js'
import { findAmbiguities } from '../routing/route-table.js'
import { compileIntrospection } from './compile-introspection.js'
import { compileListener } from './compile-tls.js'
import { compileHostPattern } from '../routing/match-host.js'
import { ConfigError, type ConfigProblem } from './problems.js'
import { compileConditions } from './compile-conditions.js'
import { compileUpstreamTls, configBaseDir } from './compile-upstream-tls.js'
import { compileTelemetry } from './compile-telemetry.js'
import { compileStatusPage } from './compile-status-page.js'
import { denialCacheSeconds } from './compile-forward-auth.js'
import type { CompiledCors } from '../cors/cors-headers.js'
import type {
  ClaimPath, ClaimSegments, CompiledConfig, CompiledDpop, CompiledIssuer, CompiledPolicy, CompiledRateLimit, CompiledRoute, CompiledUpstream,
  Grant, RawConfig, RawCors, RawPolicy, RawRateLimit
} from './types.js'

/** Headers scopegate sets upstream. Client copies of these, and of every `x-auth-*`, are always removed. */
export const IDENTITY_HEADERS = [
  'x-auth-subject', 'x-auth-client-id', 'x-auth-scopes', 'x-auth-roles', 'x-auth-issuer', 'x-auth-route'
] as const

/** Headers a `forward.claims` entry may not name: they carry the request itself. */
const RESERVED_HEADERS = new Set([
  'authorization', 'host', 'connection', 'content-length', 'content-type', 'transfer-encoding', 'te',
  'trailer', 'upgrade', 'keep-alive', 'proxy-connection', 'cookie', 'expect', 'forwarded', 'x-forwarded-for',
  'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port'
])

class Problems {
  readonly list: ConfigProblem[] = []
  add (path: string, message: string): void { this.list.push({ path, message }) }
}

function claimSegments (path: ClaimPath): ClaimSegments {
  return typeof path === 'string' ? [path] : [...path]
}

function duration (problems: Problems, path: string, text: string): number {
  try {
    return parseDuration(text)
  } catch (err) {
    problems.add(path, (err as Error).message)
    return 0
  }
}

function httpUrl (problems: Problems, path: string, text: string): URL | null {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    problems.add(path, 'must be an absolute http or https URL')
    return null
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    problems.add(path, 'must be an absolute http or https URL')
    return null
  }
  return url
}

function ipMatcher (problems: Problems, path: string, cidrs: readonly string[] | undefined): IpMatcher | null {
  if (cidrs === undefined || cidrs.length === 0) return null
  try {
    return compileIpMatcher(cidrs)
  } catch (err) {
    const bad = cidrs.findIndex((c) => { try { compileIpMatcher([c]); return false } catch { return true } })
    problems.add(bad >= 0 ? `${path}[${bad}]` : path, (err as Error).message)
    return null
  }
}

function grantMap (map: Record<string, string[]> | undefined): ReadonlyMap<string, Grant> | null {
  if (map === undefined) return null
  const grants = new Map<string, Grant>()
  for (const [name, scopes] of Object.entries(map)) {
    grants.set(name, scopes.includes('*') ? { all: true } : { all: false, scopes: new Set(scopes) })
  }
  return grants
}

/** Defaults are merged one level deep: a route's `audience.deny` keeps the default `audience.denyMissing`. */
export function mergePolicy (defaults: RawPolicy, route: RawPolicy): RawPolicy {
  const merged: Record<string, unknown> = { ...defaults }
  for (const [key, value] of Object.entries(route)) {
    const base = (defaults as Record<string, unknown>)[key]
    merged[key] = isPlainObject(base) && isPlainObject(value) && key !== 'grants'
      ? { ...base, ...value }
      : value
  }
  return merged as RawPolicy
}

function compilePolicy (problems: Problems, path: string, raw: RawPolicy, issuerIds: ReadonlySet<string>, routeId: string): CompiledPolicy {
  const issuers = raw.issuers === undefined ? null : new Set(raw.issuers)
  raw.issuers?.forEach((id, i) => {
    if (!issuerIds.has(id)) problems.add(`${path}.issuers[${i}]`, `unknown issuer "${id}"`)
  })
  const require = raw.scopes?.require ?? []
  return {
    issuers,
    network: {
      allow: ipMatcher(problems, `${path}.network.allow`, raw.network?.allow),
      deny: ipMatcher(problems, `${path}.network.deny`, raw.network?.deny)
    },
    audience: {
      allow: raw.audience?.allow === undefined ? null : new Set(raw.audience.allow),
      deny: new Set(raw.audience?.deny ?? []),
      // Deny by default: a token that names no audience is not for this API unless a route says so.
      denyMissing: raw.audience?.denyMissing ?? true
    },
    clients: {
      allow: raw.clients?.allow === undefined ? null : new Set(raw.clients.allow),
      deny: new Set(raw.clients?.deny ?? []),
      denyMissing: raw.clients?.denyMissing ?? false
    },
    grants: { roles: grantMap(raw.grants?.roles), clients: grantMap(raw.grants?.clients) },
    scopes: { require: [...new Set(require)], match: raw.scopes?.match ?? 'all' },
    denyStatus: { policy: raw.denyStatus?.policy ?? 401, scope: raw.denyStatus?.scope ?? 403 },
    roles: { require: [...new Set(raw.roles?.require ?? [])], match: raw.roles?.match ?? 'all' },
    conditions: compileConditions(raw.conditions, `${path}.conditions`, routeId, (at, message) => problems.add(at, message))
  }
}

function compileIssuers (problems: Problems, raw: RawConfig): Map<string, CompiledIssuer> {
  const byId = new Map<string, CompiledIssuer>()
  const seenIss = new Map<string, number>()
  raw.issuers.forEach((issuer, i) => {
    const path = `issuers[${i}]`
    if (byId.has(issuer.id)) problems.add(`${path}.id`, `duplicate issuer id "${issuer.id}"`)
    const dup = seenIss.get(issuer.issuer)
    if (dup !== undefined) problems.add(`${path}.issuer`, `the same issuer as issuers[${dup}]`)
    seenIss.set(issuer.issuer, i)
    httpUrl(problems, `${path}.issuer`, issuer.issuer)

    let keys: CompiledIssuer['keys'] = { kind: 'jwksUri', url: '' }
    if (issuer.jwksUri !== undefined && issuer.discovery === true) {
      problems.add(path, 'set either discovery: true or jwksUri, not both')
    } else if (issuer.jwksUri !== undefined) {
      if (httpUrl(problems, `${path}.jwksUri`, issuer.jwksUri) !== null) keys = { kind: 'jwksUri', url: issuer.jwksUri }
    } else if (issuer.discovery === true) {
      keys = { kind: 'discovery', url: `${issuer.issuer.replace(/\/$/, '')}/.well-known/openid-configuration` }
    } else {
      problems.add(path, 'needs discovery: true or a jwksUri')
    }

    byId.set(issuer.id, {
      id: issuer.id,
      issuer: issuer.issuer,
      keys,
      algorithms: new Set(issuer.algorithms),
      audiences: new Set(issuer.audiences),
      clockToleranceSec: duration(problems, `${path}.clockTolerance`, issuer.clockTolerance) / 1000,
      requireTyp: issuer.requireTyp,
      requireDpop: issuer.requireDpop,
      requireCertificateBinding: issuer.requireCertificateBinding,
      claims: {
        scope: issuer.claims.scope.map(claimSegments),
        roles: claimSegments(issuer.claims.roles),
        clientId: issuer.claims.clientId.map(claimSegments),
        subject: claimSegments(issuer.claims.subject)
      },
      jwks: {
        refreshIntervalMs: duration(problems, `${path}.jwks.refreshInterval`, issuer.jwks.refreshInterval),
        cooldownMs: duration(problems, `${path}.jwks.cooldown`, issuer.jwks.cooldown),
        timeoutMs: duration(problems, `${path}.jwks.timeout`, issuer.jwks.timeout),
        maxStaleMs: duration(problems, `${path}.jwks.maxStale`, issuer.jwks.maxStale),
        maxBytes: issuer.jwks.maxBytes
      },
      introspection: compileIntrospection((p, m) => problems.add(p, m), path, issuer, issuer.claims.roles)
    })
  })
  return byId
}

/** The one issuer that tokens which are not JWTs are introspected at: two would leave the choice to guesswork. */
function opaqueIssuer (problems: Problems, issuers: Map<string, CompiledIssuer>): CompiledIssuer | undefined {
  const marked = [...issuers.values()].filter((issuer) => issuer.introspection?.opaqueTokens === true)
  if (marked.length > 1) {
    problems.add('issuers', `introspection.opaqueTokens is true for ${marked.map((i) => `"${i.id}"`).join(' and ')}: an opaque token names no issuer, so only one may take them`)
  }
  return marked[0]
}

function compileUpstreams (problems: Problems, raw: RawConfig, source: string): Map<string, CompiledUpstream> {
  const upstreams = new Map<string, CompiledUpstream>()
  const connections = new Map<string, { id: string, options: string }>()
  for (const [id, upstream] of Object.entries(raw.upstreams)) {
    const path = `upstreams.${id}`
    const url = httpUrl(problems, `${path}.url`, upstream.url)
    if (url !== null) sameOriginSameConnection(problems, connections, id, url.origin, upstream)
    if (url !== null && (url.search !== '' || url.hash !== '')) problems.add(`${path}.url`, 'must not have a query or fragment')
    const origin = url === null ? '' : url.origin
    const basePath = url === null ? '' : url.pathname.replace(/\/+$/, '')
    upstreams.set(id, {
      id,
      base: origin + basePath,
      origin,
      basePath,
      timeoutMs: duration(problems, `${path}.timeout`, upstream.timeout),
      host: url === null ? '' : url.host,
      preserveHost: upstream.preserveHost,
      tls: compileUpstreamTls((at, message) => { problems.add(at, message) }, path, upstream.tls, url?.protocol === 'https:', configBaseDir(source)),
      http2: upstream.http2
    })
  }
  return upstreams
}

/**
 * Connections to an upstream are pooled by origin (`upstream/connector.ts`, `upstream/h2-sessions.ts`), so
 * two upstreams at one origin must connect alike: with different `tls` or `http2` settings, which one a
 * pooled connection was opened with would be left to chance.
 */
function sameOriginSameConnection (problems: Problems, seen: Map<string, { id: string, options: string }>, id: string,
  origin: string, upstream: RawConfig['upstreams'][string]): void {
  const options = JSON.stringify([upstream.tls ?? null, upstream.http2])
  const first = seen.get(origin)
  if (first === undefined) seen.set(origin, { id, options })
  else if (first.options !== options) {
    problems.add(`upstreams.${id}`, `has the origin of upstreams.${first.id} with other tls or http2 settings: connections are pooled by origin, so they must agree`)
  }
}

/**
 * A route's rate limit. The window is whole seconds: `RateLimit-Policy` states it as an integer `w`
 * (docs/rate-limits.md). `store: redis` needs the top-level `redis` block.
 */
function compileRateLimit (problems: Problems, path: string, routeId: string, raw: RawRateLimit | undefined, hasRedis: boolean): CompiledRateLimit | null {
  if (raw === undefined) return null
  const windowMs = duration(problems, `${path}.window`, raw.window)
  if (windowMs < 1000 || windowMs % 1000 !== 0) problems.add(`${path}.window`, 'must be a whole number of seconds, at least 1s')
  if (raw.store === 'redis' && !hasRedis) problems.add(`${path}.store`, 'redis needs a top-level redis section')
  return {
    limit: raw.limit,
    windowMs,
    key: [...raw.key],
    store: raw.store,
    onStoreError: raw.onStoreError,
    policyField: `"${routeId}";q=${raw.limit};w=${Math.floor(windowMs / 1000)}`
  }
}

/** Methods a CORS route allows when neither `cors.methods` nor `match.methods` names them. */
const CORS_DEFAULT_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']

/** A route's CORS (docs/cors.md): origins split into exact ones and `*.` patterns, fields rendered once. */
function compileCors (problems: Problems, path: string, raw: RawCors | undefined, routeMethods: string[] | undefined): CompiledCors | null {
  if (raw === undefined) return null
  const anyOrigin = raw.origins.includes('*')
  if (anyOrigin && raw.credentials) problems.add(`${path}.origins`, '"*" cannot be used with credentials: true (the Fetch standard refuses it); list the origins')
  const origins = new Set<string>()
  const patterns: Array<{ scheme: string, suffix: string }> = []
  for (const origin of raw.origins) {
    if (origin === '*') continue
    const lower = origin.toLowerCase()
    const wildcard = /^(https?:\/\/)\*(\..+)$/.exec(lower)
    if (wildcard === null) origins.add(lower)
    else patterns.push({ scheme: wildcard[1] as string, suffix: wildcard[2] as string })
  }
  const methods = raw.methods ?? (routeMethods === undefined ? CORS_DEFAULT_METHODS : [...routeMethods, ...(routeMethods.includes('GET') ? ['HEAD'] : [])])
  const headers = raw.headers.map((h) => h.toLowerCase())
  const maxAgeMs = duration(problems, `${path}.maxAge`, raw.maxAge)
  return {
    anyOrigin,
    origins,
    patterns,
    methods: new Set(methods),
    headers: new Set(headers),
    credentials: raw.credentials,
    allowMethods: [...new Set(methods)].join(', '),
    allowHeaders: headers.join(', '),
    exposeHeaders: raw.exposeHeaders.join(', '),
    maxAge: Math.floor(maxAgeMs / 1000)
  }
}

function compileRoutes (problems: Problems, raw: RawConfig, issuers: Map<string, CompiledIssuer>,
  upstreams: Map<string, CompiledUpstream>, claimHeaders: Set<string>): CompiledRoute[] {
  const ids = new Set<string>()
  const issuerIds = new Set(issuers.keys())
  return raw.routes.map((route, index) => {
    const path = `routes[${index}]`
    if (ids.has(route.id)) problems.add(`${path}.id`, `duplicate route id "${route.id}"`)
    ids.add(route.id)

    try {
      const normalized = normalizeTarget(route.match.path)
      if (normalized.path !== route.match.path || normalized.query !== '') {
        problems.add(`${path}.match.path`, `must be a normalized path (did you mean "${normalized.path}"?)`)
      }
    } catch {
      problems.add(`${path}.match.path`, 'must be a valid normalized path')
    }

    const host = route.match.host === undefined ? null : compileHostPattern(route.match.host)
    if (route.match.host !== undefined && host === null) {
      problems.add(`${path}.match.host`, 'must be a host name without port, or "*." and one (such as *.example.com)')
    }

    const upstream = upstreams.get(route.upstream)
    if (upstream === undefined) problems.add(`${path}.upstream`, `unknown upstream "${route.upstream}"`)
    if (route.auth !== 'none' && issuers.size === 0) problems.add(`${path}.auth`, 'needs at least one issuer')
    if (route.stripPrefix && !route.match.prefix) problems.add(`${path}.stripPrefix`, 'only applies to prefix routes')

    const policy = compilePolicy(problems, `${path}.policy`, mergePolicy(raw.defaults.policy, route.policy), issuerIds, route.id)
    // The route's own: conditions from defaults.policy simply never run on auth: none.
    if (route.auth === 'none' && (route.policy.conditions !== undefined || route.policy.roles !== undefined)) {
      problems.add(`${path}.policy`, 'conditions and roles judge a token: a route with auth: none has none')
    }

    const claims = new Map<string, ClaimSegments>()
    for (const [header, claim] of Object.entries(route.forward.claims ?? {})) {
      const name = header.toLowerCase()
      if (RESERVED_HEADERS.has(name) || (IDENTITY_HEADERS as readonly string[]).includes(name)) {
        problems.add(`${path}.forward.claims`, `"${header}" is a header scopegate cannot set from a claim`)
      }
      claims.set(name, claimSegments(claim))
      claimHeaders.add(name)
    }
    if (route.forward.authorization === 'reissue' && raw.reissue === undefined) {
      problems.add(`${path}.forward.authorization`, 'reissue needs a top-level reissue section')
    }

    return {
      id: route.id,
      index,
      path: route.match.path,
      prefix: route.match.prefix,
      methods: route.match.methods === undefined ? null : new Set(route.match.methods.map((m) => m.toUpperCase())),
      host,
      upstream: upstream ?? { id: route.upstream, base: '', origin: '', basePath: '', timeoutMs: 0, host: '', preserveHost: false, tls: null, http2: false },
      stripPrefix: route.stripPrefix,
      auth: route.auth,
      mode: route.mode,
      policy,
      forward: {
        authorization: route.forward.authorization,
        audience: route.forward.audience ?? upstream?.base ?? '',
        claims,
        stripHeaders: compileStrippedHeaders(route.forward.stripHeaders)
      },
      websocket: { ...route.websocket },
      rateLimit: compileRateLimit(problems, `${path}.rateLimit`, route.id, route.rateLimit, raw.redis !== undefined),
      cors: compileCors(problems, `${path}.cors`, route.cors, route.match.methods),
      requireDpop: route.requireDpop,
      requireCertificateBinding: route.requireCertificateBinding,
      cacheHints: route.forwardAuth?.cacheHints ?? true,
      denialCacheSeconds: denialCacheSeconds(route.forwardAuth, `${path}.forwardAuth.denialCache`, (at, message) => problems.add(at, message))
    }
  })
}

/** DPoP proofs (docs/dpop.md): a Redis replay store needs a `redis` block, several workers a shared nonce secret. */
function compileDpop (problems: Problems, raw: RawConfig): CompiledDpop {
  const { dpop } = raw
  if (dpop.replay.store === 'redis' && raw.redis === undefined) problems.add('dpop.replay.store', 'redis needs a top-level redis block')
  if (dpop.nonce.enabled && dpop.nonce.secret === undefined && raw.server.workers !== 1) {
    problems.add('dpop.nonce.secret', 'is required unless server.workers is 1: each worker would make nonces the others refuse')
  }
  const windowMs = duration(problems, 'dpop.nonce.window', dpop.nonce.window)
  if (dpop.nonce.enabled && windowMs < 1000) problems.add('dpop.nonce.window', 'must be at least 1s')
  return {
    algorithms: new Set(dpop.algorithms),
    algs: dpop.algorithms.join(' '),
    proofLifetimeMs: duration(problems, 'dpop.proofLifetime', dpop.proofLifetime),
    clockSkewMs: duration(problems, 'dpop.clockSkew', dpop.clockSkew),
    replay: { ...dpop.replay },
    nonce: dpop.nonce.enabled ? { secret: dpop.nonce.secret ?? null, windowMs } : null
  }
}

function deepFreeze<T> (value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value
  // Only data is frozen: matchers and other class instances keep their own invariants. Maps and Sets are
  // frozen as objects only; their contents are exposed through Readonly types.
  const proto = Object.getPrototypeOf(value)
  const isData = proto === Object.prototype || proto === null || Array.isArray(value) || value instanceof Map || value instanceof Set
  if (!isData) return value
  Object.freeze(value)
  for (const child of Object.values(value)) deepFreeze(child)
  if (value instanceof Map) for (const child of value.values()) deepFreeze(child)
  return value
}

/** Compile a validated config. Throws `ConfigError` listing every problem found. */
export function compileConfig (raw: RawConfig, source = '<inline>'): CompiledConfig {
  const problems = new Problems()
  const issuersById = compileIssuers(problems, raw)
  const upstreams = compileUpstreams(problems, raw, source)
  const claimHeaders = new Set<string>()
  const routes = compileRoutes(problems, raw, issuersById, upstreams, claimHeaders)
  for (const { index, message } of findAmbiguities(routes)) problems.add(`routes[${index}].match`, message)

  const trust = raw.server.trustProxy
  const trustProxy = trust === true
    ? compileIpMatcher(['0.0.0.0/0', '::/0'])
    : trust === false ? null : ipMatcher(problems, 'server.trustProxy', trust)

  raw.server.forwarded.clientIpHeaders.forEach((header, i) => {
    const name = header.toLowerCase()
    if (RESERVED_HEADERS.has(name) || name.startsWith('x-auth-') || claimHeaders.has(name)) {
      problems.add(`server.forwarded.clientIpHeaders[${i}]`, `"${header}" is a header scopegate cannot set to the client address`)
    }
  })

  // Re-issued tokens count exp in whole seconds: a shorter ttl would sign tokens already expired.
  if (raw.reissue !== undefined && duration(problems, 'reissue.ttl', raw.reissue.ttl) < 1000) problems.add('reissue.ttl', 'must be at least 1s')
  // Without key files each worker would generate its own key, and the JWKS would differ from worker to worker.
  if (raw.reissue !== undefined && raw.reissue.keys === undefined && raw.server.workers !== 1) {
    problems.add('reissue.keys', 'is required unless server.workers is 1: each worker would generate a different key')
  }

  const opaque = opaqueIssuer(problems, issuersById)
  const dpop = compileDpop(problems, raw)
  const redis = raw.redis === undefined
    ? null
    : { url: raw.redis.url, keyPrefix: raw.redis.keyPrefix, timeoutMs: duration(problems, 'redis.timeout', raw.redis.timeout) }
  const telemetry = compileTelemetry(raw.telemetry, (p, m) => problems.add(p, m))

  // TLS files are read here, so a missing or mismatched one is reported with the rest (docs/tls.md).
  const proxyListener = compileListener((p, m) => problems.add(p, m), 'server.proxy', raw.server.proxy, source)
  const adminListener = compileListener((p, m) => problems.add(p, m), 'server.admin', raw.server.admin, source)
  const extAuthzListener = raw.server.extAuthz === undefined ? null : compileListener((p, m) => problems.add(p, m), 'server.extAuthz', raw.server.extAuthz, source)

  const statusPage = compileStatusPage((path, message) => problems.add(path, message), raw.server.admin.status)

  if (problems.list.length > 0) throw new ConfigError(source, problems.list)

  return deepFreeze({
    source,
    server: {
      proxy: proxyListener,
      admin: adminListener,
      trustProxy,
      workers: raw.server.workers === 'auto' ? availableParallelism() : raw.server.workers,
      requestTimeoutMs: parseDuration(raw.server.requestTimeout),
      shutdownTimeoutMs: parseDuration(raw.server.shutdownTimeout),
      maxHeaderSize: raw.server.maxHeaderSize,
      logLevel: raw.server.logLevel,
      forwarded: { ...raw.server.forwarded, clientIpHeaders: raw.server.forwarded.clientIpHeaders.map((name) => name.toLowerCase()) },
      extAuthz: extAuthzListener,
      clientCertificateHeader: raw.server.clientCertificateHeader === undefined
        ? null
        : { ...raw.server.clientCertificateHeader, name: raw.server.clientCertificateHeader.name.toLowerCase() },
      statusPage
    },
    issuersByIss: new Map([...issuersById.values()].map((issuer) => [issuer.issuer, issuer])),
    issuersById,
    opaqueIssuer: opaque,
    upstreams,
    routes,
    identityHeaders: new Set([...IDENTITY_HEADERS, ...claimHeaders]),
    reissue: raw.reissue ?? null,
    keepClaims: routes.some((route) => route.forward.claims.size > 0 || route.forward.authorization === 'reissue' ||
      route.policy.conditions.token.length + route.policy.conditions.request.length > 0),
    dpop,
    redis,
    telemetry
  })
}
