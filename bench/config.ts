/**
 * The benchmark's gateway configs and token claims, shared by `run.ts`, `profile.ts` and `reissue.ts`.
 */

export const AUD = 'https://api.bench'
/** `BENCH_LOG_LEVEL`: info (the default, one line per decision) or warn (denials only). */
export const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'info'

/** Loopback listeners, the bench issuer (roles in a namespaced claim) and one upstream, `api`; `rest` adds routes and more. */
export function gatewayConfig (issuerUrl: string, upstream: string, port: number, adminPort: number, rest: Record<string, unknown>): Record<string, unknown> {
  return {
    server: { proxy: { host: '127.0.0.1', port }, admin: { host: '127.0.0.1', port: adminPort }, logLevel: LOG_LEVEL },
    issuers: [{ id: 'bench', issuer: issuerUrl, jwksUri: issuerUrl, algorithms: ['RS256', 'ES256'], audiences: [AUD], claims: { roles: 'https://bench/roles' } }],
    upstreams: { api: { url: upstream.replace(/\/$/, '') } },
    ...rest
  }
}

/** The bench routes' policy: role and client grants, a required scope. A new object each time: callers add to it. */
function benchPolicy (): Record<string, unknown> {
  return {
    grants: {
      roles: { admin: ['*'], editor: ['read:todos', 'write:todos'], user: ['read:todos'] },
      clients: { 'bench-client': ['read:todos', 'write:todos'] }
    },
    scopes: { require: ['read:todos'] }
  }
}

/** The gateway config of the benchmark: a realistic policy (audience, client, role and client grants, a required scope). */
export function benchConfig (issuerUrl: string, upstream: string, port: number, adminPort: number): Record<string, unknown> {
  return gatewayConfig(issuerUrl, upstream, port, adminPort, {
    defaults: { policy: { audience: { deny: ['http://todoapi2.api'], denyMissing: true }, clients: { deny: ['CLIENT_ID'] } } },
    routes: [{
      id: 'api',
      match: { path: '/api', prefix: true },
      upstream: 'api',
      policy: benchPolicy()
    }, {
      // The same policy plus a rate limit far above the load, so every request spends its bucket and none
      // is refused: the row measures what a limit costs (a bucket per client and subject, memory store).
      id: 'limited',
      match: { path: '/limited', prefix: true },
      upstream: 'api',
      policy: benchPolicy(),
      rateLimit: { limit: 1_000_000, window: '1s', key: ['route', 'client', 'subject'] }
    }]
  })
}

/**
 * The bench config with two conditions on its route (docs/policy.md, "Conditions"): one on the token
 * alone, worked out once per cached token with the rest of the policy, and one CEL expression on the
 * request, judged on every request. Its own gateway: conditions keep the claims in the token cache.
 */
export function conditionsConfig (issuerUrl: string, upstream: string, port: number, adminPort: number): Record<string, unknown> {
  const config = benchConfig(issuerUrl, upstream, port, adminPort)
  const [route] = config.routes as Array<{ policy: Record<string, unknown> }>
  if (route !== undefined) {
    route.policy.conditions = [
      { claim: 'client_id', in: ['bench-client', 'bench-cli'] },
      { cel: 'method in ["GET", "HEAD"] && path.startsWith("/api/")' }
    ]
  }
  return config
}

/** The claims of the i-th bench token: an editor through bench-client, asking for more than it is granted. */
export function benchClaims (i: number): Record<string, unknown> {
  return { sub: `user-${i}`, aud: AUD, client_id: 'bench-client', scope: 'read:todos write:todos delete:todos', 'https://bench/roles': ['editor'] }
}

/** The tokens in turn, as Authorization headers; `used()` says how many were handed out. */
export function cycle (tokens: readonly string[]): { next: () => Record<string, string>, used: () => number } {
  let i = 0
  return { next: () => ({ authorization: `Bearer ${tokens[i++ % tokens.length] ?? ''}` }), used: () => i }
}

/**
 * `benchConfig` with the issuer introspecting opaque tokens at the bench issuer (docs/opaque-tokens.md):
 * for the hot opaque token, whose cache hit should cost what a JWT's does.
 */
export function opaqueBenchConfig (issuerUrl: string, upstream: string, port: number, adminPort: number): Record<string, unknown> {
  const config = benchConfig(issuerUrl, upstream, port, adminPort)
  const [issuer] = config.issuers as Array<Record<string, unknown>>
  return {
    ...config,
    issuers: [{ ...issuer, introspection: { endpoint: `${issuerUrl}/introspect`, clientId: 'bench-gateway', clientSecret: 'bench-introspection-secret', cacheTtl: '10m' } }]
  }
}

/**
 * The bench config with tracing on and every request sampled (the worst case), exported over OTLP/HTTP to
 * `collector` (a local sink, see otlp-sink.ts): what tracing costs (docs/observability.md#cost).
 */
export function tracingConfig (issuerUrl: string, upstream: string, port: number, adminPort: number, collector: string): Record<string, unknown> {
  return { ...benchConfig(issuerUrl, upstream, port, adminPort), telemetry: { tracing: { enabled: true, endpoint: collector, sampler: 'always_on' } } }
}

/**
 * `benchConfig` for forward auth behind nginx on the same host: nginx is trusted to name the original
 * request (`X-Original-*`, `X-Forwarded-*`; docs/forward-auth.md).
 */
export function ingressBenchConfig (issuerUrl: string, upstream: string, port: number, adminPort: number): Record<string, unknown> {
  const config = benchConfig(issuerUrl, upstream, port, adminPort)
  return { ...config, server: { ...(config.server as Record<string, unknown>), trustProxy: ['127.0.0.1/32'] } }
}
