/**
 * Certificate-bound tokens (RFC 8705 §3, docs/tls.md#certificate-bound-tokens-rfc-8705), between the token and
 * the DPoP stage: a token whose `cnf.x5t#S256` names a client certificate is worth something only over a
 * connection authenticated with that certificate, so one presented without it was taken from its holder.
 *
 * - A bound token is accepted only when the request came with a client certificate whose SHA-256
 *   thumbprint is the bound one. Without a certificate, or with another, it is 401 `invalid_token`.
 * - An unbound token is 401 `invalid_token` when the route or the token's issuer requires binding.
 * - Otherwise nothing is checked: an unbound token on a route that does not require binding passes, with
 *   or without a certificate (the certificate then authenticates the connection, not the token).
 *
 * The thumbprint comes from the TLS socket (proxy mode), Envoy's `source.certificate` (ext_authz) or a
 * trusted ingress's header (forward auth); this stage only compares. It runs on every request, cached token
 * or not: the cache holds the token's binding, never the certificate it was last seen with. Descriptions
 * are fixed texts, and neither thumbprint reaches the client or the log.
 */
import type { CompiledRoute } from '../config/types.js'
import { GatewayError, type Reason } from '../shared/errors.js'
import type { VerifiedToken } from '../token/verified-token.js'

/** What the certificate stage found, for `explain`: whether the token is bound, and whether a certificate came. */
export interface CertificateStep {
  stage: 'certificate'
  bound: boolean
  presented: boolean
  failure: GatewayError | null
}

/** Whether this route, for this token, has a certificate binding to check. */
export function certificateBindingApplies (route: CompiledRoute, token: VerifiedToken): boolean {
  return token.x5t !== null || route.requireCertificateBinding || token.issuer.requireCertificateBinding
}

function refused (reason: Reason, description: string, detail: string): GatewayError {
  return new GatewayError(401, 'invalid_token', reason, description, { detail })
}

/**
 * The certificate binding of a token, for a request that came with the certificate of this thumbprint
 * (base64url SHA-256 of its DER), or with none (undefined). Null when it passes.
 */
export function checkCertificateBinding (route: CompiledRoute, token: VerifiedToken, thumbprint: string | undefined): GatewayError | null {
  if (token.x5t === null) {
    if (!route.requireCertificateBinding && !token.issuer.requireCertificateBinding) return null
    const by = route.requireCertificateBinding ? `route ${route.id}` : `issuer ${token.issuer.id}`
    return refused('certificate_binding_required', 'this resource requires a token bound to the client certificate', `${by} requires cnf.x5t#S256`)
  }
  if (thumbprint === undefined) {
    return refused('certificate_missing', 'the token is bound to a client certificate, and none was presented', 'cnf.x5t#S256 without a client certificate')
  }
  if (thumbprint !== token.x5t) {
    return refused('certificate_binding_mismatch', 'the token is not bound to the client certificate presented', 'cnf.x5t#S256 is not the certificate\'s thumbprint')
  }
  return null
}
