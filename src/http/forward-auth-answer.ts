/**
 * What a forward-auth call is answered with: plain functions from a decision to a status and headers.
 * The reply itself is sent by `forward-auth.ts`, and errors are rendered only by `reply-error.ts`.
 *
 * Status. Ingresses read only 2xx (allow), 401 and 403 (deny); anything else is an error to them
 * (ingress-nginx turns it into a 500, nginx `auth_request` too), so every denial is mapped onto 401 or 403
 * and keeps its `error` code, description and WWW-Authenticate challenge (docs/responses.md):
 * - 401 and 403 stay as they are (`unauthorized`, `invalid_token`, and the route's `denyStatus` for
 *   `end_users_not_allowed` and `insufficient_scope`);
 * - a malformed or repeated Authorization header (400 `invalid_request`) becomes 401: the client must
 *   fix its credentials;
 * - issuer keys unavailable (503 `temporarily_unavailable`) becomes 401, with its Retry-After: the
 *   credentials could not be checked, and a retry may succeed;
 * - a rate limit (429 `rate_limited`) becomes 403, code, `Retry-After` and `RateLimit` fields unchanged
 *   (docs/rate-limits.md#forward-auth);
 * - everything else becomes 403, code unchanged: no route (`no_route`), a path with no canonical form or
 *   an original request that cannot be determined (`invalid_request`), an internal error
 *   (`server_error`). No credentials would make these pass.
 *
 * Body of a denial. The JSON body of docs/responses.md, except for the nginx family (see `denialWithoutBody`).
 *
 * Caching. An ingress that caches decisions (ingress-nginx `auth-cache-key`, nginx `proxy_cache`) keys
 * them on what the operator names: the Authorization value, the method, the host and the URI. An answer
 * may be kept only when it depends on nothing else: `s-maxage=N` (shared caches, RFC 9111 §5.2.2.10:
 * nginx honours it, and refuses to cache `private`) with `max-age=0`, and `Vary: Authorization` so that a
 * cache key missing the token still cannot serve one token's answer to another. Anything else is
 * `no-store`. See docs/forward-auth.md, "Caching decisions", for the rules and the revocation window:
 * - an allow: N ≤ `FORWARD_AUTH_CACHE_MAX_SECONDS`, never past the token's `exp` (`allowCacheHint`);
 * - a denial: N = the route's `forwardAuth.denialCache` (default 5 s), only for the denials that the key
 *   alone decides (`KEYED_DENIALS`, `denialCacheHint`);
 * - `no-store` on a route with network rules (the client address is not in the key), in audit mode (each
 *   request must be decided and logged), and on one whose operator turned the hints off
 *   (`forwardAuth.cacheHints: false`: a revocation must show on the next request); for an allow also
 *   with a re-issued token (minted per request), a rate limit (each request spends its bucket), a DPoP
 *   proof or a token with less than a second to live; for a denial also on DPoP, certificate-binding
 *   and CORS routes (the CORS fields follow the request's `Origin`).
 */
import type { Allow, Deny } from '../decision/decide.js'
import type { CompiledRoute } from '../config/types.js'
import { GatewayError, type Reason } from '../shared/errors.js'
import { FORWARD_AUTH_CACHE_MAX_SECONDS } from '../config/compile-forward-auth.js'

// The identity headers of an allow are shared with the ext_authz service; named from here as before.
export { AUDIT_HEADER, allowHeaders } from '../authz/allow-headers.js'

// The cap lives with the config that bounds `denialCache` by it; named from here as before.
export { FORWARD_AUTH_CACHE_MAX_SECONDS }

/**
 * Whether a denial goes without its JSON body (`Content-Length: 0`): for calls in the nginx form, which
 * name the request in `X-Original-URI` or `X-Original-URL` (nginx `auth_request`, ingress-nginx
 * `auth-url`). nginx reads only the headers of an `auth_request` answer and never shows its body, and it
 * returns a kept-alive upstream connection to its pool only when the answer has no body left to read
 * (a 204, a 304, or `Content-Length: 0`); any other answer makes it close the connection. A denial with a
 * body thus cost nginx one TCP connection to scopegate per denied request: under a stream of bad tokens,
 * thousands in TIME-WAIT and a tenth of the throughput. The status, the challenge (from which an nginx
 * config reads the `error` code back) and `cache-control: no-store` are unchanged. Traefik ForwardAuth and
 * Envoy ext_authz hand the denial's body to the client and read it whole before reusing the connection,
 * so their calls keep it. A client adding `X-Original-URI` to a call through those gets only its own
 * denial's body dropped.
 */
export function denialWithoutBody (rawHeaders: readonly string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name !== undefined && /^x-original-ur[il]$/i.test(name)) return true
  }
  return false
}

/** The 401 or 403 a forward-auth denial is answered with. */
export function forwardAuthStatus (err: GatewayError): 401 | 403 {
  if (err.status === 401 || err.status === 403) return err.status
  if (err.reason === 'authorization_malformed' || err.reason === 'authorization_duplicated') return 401
  if (err.code === 'temporarily_unavailable') return 401
  return 403
}

/** The same error with its forward-auth status; code, description, challenge and detail unchanged. */
export function forwardAuthError (err: GatewayError): GatewayError {
  const status = forwardAuthStatus(err)
  if (status === err.status) return err
  return new GatewayError(status, err.code, err.reason, err.description, {
    detail: err.detail, scope: err.scope, retryAfter: err.retryAfter, headers: err.headers, dpop: err.dpop, cause: err.cause
  })
}

/** The caching fields of a forward-auth answer: `cache-control`, and `vary` when it may be kept. */
export type CacheHint = Readonly<Record<string, string>>

const NO_STORE: CacheHint = Object.freeze({ 'cache-control': 'no-store' })

/** `KEEP_FOR[n]`: kept by a shared cache for n seconds, one entry per token; built once, not per answer. */
const KEEP_FOR: readonly CacheHint[] = Array.from({ length: FORWARD_AUTH_CACHE_MAX_SECONDS + 1 }, (_, n) =>
  n === 0 ? NO_STORE : Object.freeze({ 'cache-control': `s-maxage=${n}, max-age=0`, vary: 'authorization' }))

function keepFor (seconds: number): CacheHint {
  return seconds < 1 ? NO_STORE : KEEP_FOR[Math.min(seconds, FORWARD_AUTH_CACHE_MAX_SECONDS)] ?? NO_STORE
}

/** A route whose answers depend on more than the cache key, whatever the decision: the client address, each request's own log line. */
function routeKeyedOnMore (route: CompiledRoute): boolean {
  const { network } = route.policy
  return route.mode === 'audit' || network.allow !== null || (network.deny !== null && network.deny.cidrs.length > 0)
}

/** Whether an allow may be reused by the ingress, and for how long. */
export function allowCacheHint (decision: Allow, nowMs: number): CacheHint {
  if (decision.audit !== null) return NO_STORE
  // A DPoP proof is good for one request: an ingress that reused this answer would let its proof be replayed.
  if (decision.token?.jkt != null) return NO_STORE
  const { route } = decision
  if (!route.cacheHints || routeKeyedOnMore(route)) return NO_STORE
  if (route.forward.authorization === 'reissue') return NO_STORE
  // A cached allow would skip the limit: each request must spend its bucket.
  if (route.rateLimit !== null) return NO_STORE
  let seconds = FORWARD_AUTH_CACHE_MAX_SECONDS
  if (decision.token !== null) seconds = Math.min(seconds, Math.floor(decision.token.expiresAt - nowMs / 1000))
  return keepFor(seconds)
}

/**
 * Denials that depend on the Authorization value, the method, the host and the URI alone, and that no
 * later request with the same key can turn into an allow until the config changes: no token, a token
 * that is not one, does not verify, has expired, or comes from an issuer the route does not accept; and
 * the route's policy on the token's claims. Left out, and so `no-store`: `token_key_unknown` (a JWKS
 * refresh may bring the key), `keys_unavailable` and `introspection_unavailable` (the issuer may answer
 * next time), `token_inactive` (the issuer's answer of the moment), `token_not_yet_valid` and
 * `token_issued_in_future` (the token becomes valid with time), duplicated headers (the key holds one
 * value), the network, rate limits, DPoP proofs and certificates (not in the key), and everything that is
 * not about the token (`no_route`, malformed requests, internal errors).
 */
const KEYED_DENIALS: ReadonlySet<Reason> = new Set<Reason>([
  'token_missing', 'authorization_malformed', 'token_malformed', 'token_issuer_unknown', 'token_issuer_not_allowed',
  'token_algorithm_not_allowed', 'token_signature_invalid', 'token_expired', 'token_claim_invalid', 'token_type_invalid',
  'token_audience_invalid', 'audience_denied', 'audience_missing', 'client_denied', 'client_missing',
  'scope_insufficient', 'role_missing', 'condition_failed'
])

/**
 * Whether a denial may be reused by the ingress: for the route's `forwardAuth.denialCache` seconds when it
 * is one of `KEYED_DENIALS` on a route whose answers depend on the key alone, `no-store` otherwise.
 */
export function denialCacheHint (decision: Deny): CacheHint {
  const { route, error, token } = decision
  if (route === null || route.denialCacheSeconds < 1 || !KEYED_DENIALS.has(error.reason)) return NO_STORE
  // A condition that reads the request or the clock (`perRequest`) may pass on the next request.
  if (error.reason === 'condition_failed' && route.policy.conditions.request.length > 0) return NO_STORE
  // DPoP and certificate-bound tokens: the proof or the certificate, not in the key, took part.
  if (error.dpop !== undefined || token?.jkt != null || token?.x5t != null) return NO_STORE
  if (route.requireDpop || route.requireCertificateBinding || route.cors !== null || routeKeyedOnMore(route)) return NO_STORE
  return keepFor(route.denialCacheSeconds)
}
