/**
 * The client certificate of the request an ingress asks about, for certificate-bound tokens (RFC 8705,
 * docs/tls.md#certificate-bound-tokens-rfc-8705): the ingress terminated TLS and passes the certificate on
 * in the header `server.clientCertificateHeader` names, as a URL-encoded PEM (nginx
 * `$ssl_client_escaped_cert`) or as Envoy's `x-forwarded-client-cert`.
 *
 * Believed only from a `server.trustProxy` peer, like the original method and path
 * (`forward-auth-request.ts`): from anyone else the header is ignored, and the request has no certificate,
 * so a bound token is refused. The header sent twice is refused rather than one of them picked.
 */
import type { CompiledServer } from '../config/types.js'
import { deny } from '../shared/errors.js'
import { pemThumbprint, xfccThumbprint } from '../request/client-certificate.js'

/**
 * The certificate's thumbprint, or undefined when there is none to believe.
 *
 * @throws GatewayError 400 `invalid_request` when a trusted peer sends the header twice or unreadable.
 */
export function forwardedCertificate (rawHeaders: readonly string[], header: CompiledServer['clientCertificateHeader'], peerTrusted: boolean): string | undefined {
  if (header === null || !peerTrusted) return undefined
  let value: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] ?? '').toLowerCase() !== header.name) continue
    if (value !== undefined) throw deny.badRequest('certificate_malformed', 'the client certificate could not be read', `${header.name} sent more than once`)
    value = (rawHeaders[i + 1] ?? '').trim()
  }
  // nginx sends the variable empty when the client presented no certificate.
  if (value === undefined || value === '') return undefined
  return header.format === 'xfcc' ? xfccThumbprint(value) : pemThumbprint(value)
}
