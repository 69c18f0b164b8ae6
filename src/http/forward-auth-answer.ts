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
 * Caching (allow only; every denial is `no-store`). An ingress that caches decisions (ingress-nginx
 * `auth-cache-key`, nginx `proxy_cache`) keys them on what the operator names, so an allow may be
 * cached only when it depends on nothing but the Authorization header, the method and the URI:
 * `s-maxage=N` (shared caches, RFC 9111 §5.2.2.10: nginx honours it, and refuses to cache `private`)
 * with `max-age=0`, and `Vary: Authorization` so that a cache key missing the token still cannot serve
 * one token's allow to another. N is at most `FORWARD_AUTH_CACHE_MAX_SECONDS` and never past the
 * token's `exp`. It is `no-store` instead when the decision also depends on something else or must be
 * seen each time: a route with a network rule (the client address is not in the key), audit mode (each
 * request must be decided and logged), a re-issued token (it is minted per request), or a token with
 * less than a second to live, or a route with a rate limit (each request must spend its bucket), or a
 * route whose operator turned the hints off (`forwardAuth.cacheHints: false`: revocation must show on
 * the next request, not within `s-maxage`).
 */
import type { Decision } from '../decision/decide.js'
import { GatewayError } from '../shared/errors.js'

// The identity headers of an allow are shared with the ext_authz service; named from here as before.
export { AUDIT_HEADER, allowHeaders } from '../authz/allow-headers.js'

/** Longest an allow may be cached by the ingress, seconds: a config reload or key rotation shows within it. */
export const FORWARD_AUTH_CACHE_MAX_SECONDS = 60

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

/** Whether a decision may be reused by the ingress, and for how long. */
export function cacheControl (decision: Decision, nowMs: number): { cacheControl: string, vary?: string } {
  if (!decision.allowed || decision.audit !== null) return { cacheControl: 'no-store' }
  // A DPoP proof is good for one request: an ingress that reused this answer would let its proof be replayed.
  if (decision.token?.jkt != null) return { cacheControl: 'no-store' }
  const { policy, forward } = decision.route
  if (!decision.route.cacheHints) return { cacheControl: 'no-store' }
  if (policy.network.allow !== null || (policy.network.deny !== null && policy.network.deny.cidrs.length > 0)) {
    return { cacheControl: 'no-store' }
  }
  if (forward.authorization === 'reissue') return { cacheControl: 'no-store' }
  // A cached allow would skip the limit: each request must spend its bucket.
  if (decision.route.rateLimit !== null) return { cacheControl: 'no-store' }
  let seconds = FORWARD_AUTH_CACHE_MAX_SECONDS
  if (decision.token !== null) seconds = Math.min(seconds, Math.floor(decision.token.expiresAt - nowMs / 1000))
  if (seconds < 1) return { cacheControl: 'no-store' }
  return { cacheControl: `s-maxage=${seconds}, max-age=0`, vary: 'authorization' }
}
