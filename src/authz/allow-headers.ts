/**
 * The identity headers an allow hands to a proxy that forwards the request itself: forward auth's 200
 * (`http/forward-auth-answer.ts`) and ext_authz's `OkHttpResponse` (`grpc/check-response.ts`) carry the same.
 */
import type { CompiledConfig } from '../config/types.js'
import type { Allow } from '../decision/decide.js'

/** Set on an audit-mode allow to the `error` code that enforce mode would have answered. Not an `x-auth-*`. */
export const AUDIT_HEADER = 'x-scopegate-audit'

/**
 * The headers of an allow: the identity headers of the decision, and every other identity header this
 * config can set, empty. An ingress copies only the headers present in the answer (Envoy's
 * `allowed_upstream_headers`, Envoy Gateway's `headersToBackend`), so answering an empty value is what
 * overwrites a client's forged copy of a header this request has no value for. nginx drops an empty
 * header, which strips the client's copy just the same.
 *
 * @param reissued For a `forward.authorization: reissue` route: the re-issued token, or undefined when
 *   none could be minted; its `authorization` header is then empty, so an ingress that copies it strips
 *   the client's token, as the proxy does.
 */
export function allowHeaders (decision: Allow, config: CompiledConfig, reissued?: string): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const name of config.identityHeaders) headers[name] = ''
  Object.assign(headers, decision.headers)
  if (decision.route.forward.authorization === 'reissue') headers.authorization = reissued === undefined ? '' : `Bearer ${reissued}`
  if (decision.audit !== null) headers[AUDIT_HEADER] = decision.audit.code
  return headers
}
