/**
 * A verdict as an Envoy ext_authz `CheckResponse` (docs/istio.md), in the shape @grpc/proto-loader encodes
 * (`keepCase`: the proto's own field names).
 *
 * Allow: `status.code` OK and an `OkHttpResponse`:
 * - `headers`: the identity headers forward auth answers (`authz/allow-headers.ts`), each with
 *   `append_action: OVERWRITE_IF_EXISTS_OR_ADD`, so a client's copy is replaced, never joined;
 * - `headers_to_remove`: the identity headers this request has no value for (Envoy drops a header set to
 *   an empty value rather than clearing it), the client's Authorization on a `forward.authorization:
 *   strip` route, and every client header present that proxy mode strips (`forward/strip-headers.ts`:
 *   routing and method overrides, client-address claims, the route's `forward.stripHeaders`), except
 *   `x-forwarded-*` and `x-envoy-*`, which Envoy itself sets and sanitizes;
 * - `response_headers_to_add`: the route's CORS fields, as proxy mode adds them to the response.
 *
 * Deny: `status.code` UNAUTHENTICATED (16) for a 401, PERMISSION_DENIED (7) otherwise, and a
 * `DeniedHttpResponse` that Envoy sends to the client as is: the status proxy mode answers (401, 403, 429,
 * 400, 503…), the same JSON body, `content-type`, `cache-control: no-store`, `WWW-Authenticate`,
 * `Retry-After`, the 429's `RateLimit` fields, and the route's CORS fields.
 */
import type { CompiledConfig } from '../config/types.js'
import type { Allow } from '../decision/decide.js'
import { allowHeaders } from '../authz/allow-headers.js'
import type { CheckedRequest } from '../authz/check-request.js'
import { responseCorsHeaders } from '../cors/cors-headers.js'
import { isStrippedHeader } from '../forward/strip-headers.js'
import { errorBody, errorHeaders } from '../http/reply-error.js'
import type { GatewayError } from '../shared/errors.js'
import { GRPC_STATUS } from '../shared/grpc-status.js'
import type { CompiledRoute } from '../config/types.js'

export interface HeaderValueOption {
  header: { key: string, value: string }
  append_action: 'OVERWRITE_IF_EXISTS_OR_ADD'
}

export interface CheckResponse {
  status: { code: number, message?: string }
  ok_response?: {
    headers: HeaderValueOption[]
    headers_to_remove: string[]
    response_headers_to_add: HeaderValueOption[]
  }
  denied_response?: {
    status: { code: number }
    headers: HeaderValueOption[]
    body: string
  }
}

/** Names Envoy manages on the forwarded request itself: removing them would undo its own work. */
const ENVOY_MANAGED = ['x-forwarded-', 'x-envoy-']

function options (headers: Readonly<Record<string, string>>): HeaderValueOption[] {
  return Object.entries(headers).map(([key, value]) => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }))
}

/** The route's CORS response fields for the request's Origin, or none. */
function corsFields (route: CompiledRoute | null, origin: string | undefined): Record<string, string> {
  const cors = route?.cors
  return cors === undefined || cors === null ? {} : responseCorsHeaders(cors, origin)
}

/** The client headers present that proxy mode would strip, and that Envoy lets a filter remove. */
function strippedClientHeaders (request: CheckedRequest, route: CompiledRoute, config: CompiledConfig, setting: Readonly<Record<string, string>>): string[] {
  const names = new Set<string>()
  const { rawHeaders } = request
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (name === 'host' || setting[name] !== undefined || ENVOY_MANAGED.some((prefix) => name.startsWith(prefix))) continue
    if (isStrippedHeader(name, route.forward.stripHeaders, config.identityHeaders)) names.add(name)
  }
  return [...names]
}

/** The answer to an allowed request; `preflightCors`: the CORS grant of a preflight let through. */
export function allowResponse (request: CheckedRequest, decision: Allow, config: CompiledConfig, reissued?: string,
  preflightCors?: Record<string, string>): CheckResponse {
  const all = allowHeaders(decision, config, reissued)
  const setting: Record<string, string> = {}
  const remove: string[] = []
  for (const [name, value] of Object.entries(all)) {
    if (value === '') remove.push(name)
    else setting[name] = value
  }
  if (decision.route.forward.authorization === 'strip' && !remove.includes('authorization')) remove.push('authorization')
  remove.push(...strippedClientHeaders(request, decision.route, config, setting).filter((name) => !remove.includes(name)))
  return {
    status: { code: GRPC_STATUS.OK },
    ok_response: {
      headers: options(setting),
      headers_to_remove: remove,
      response_headers_to_add: options(preflightCors ?? corsFields(decision.route, request.cors.origin))
    }
  }
}

/**
 * The gRPC code of a denial (docs/istio.md). Not the table of `grpcStatusOf`, which is all a gRPC client
 * learns of a refusal: Envoy sends `denied_response`, with the HTTP status itself, to the client as is,
 * so this code only has to say that the request is denied, and whether for want of credentials.
 */
function deniedCode (httpStatus: number): number {
  return httpStatus === 401 ? GRPC_STATUS.UNAUTHENTICATED : GRPC_STATUS.PERMISSION_DENIED
}

/** The answer to a denied request: the status, fields and body proxy mode would answer with. */
export function deniedResponse (error: GatewayError, route: CompiledRoute | null, origin: string | undefined): CheckResponse {
  const headers = { ...errorHeaders(error), ...error.headers, ...corsFields(route, origin) }
  return {
    status: { code: deniedCode(error.status), message: error.code },
    denied_response: { status: { code: error.status }, headers: options(headers), body: errorBody(error) }
  }
}
