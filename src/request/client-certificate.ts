/**
 * The client certificate a request came with, as the thumbprint certificate-bound tokens are compared
 * with (RFC 8705 §3.1: base64url SHA-256 of the certificate's DER, `cnf.x5t#S256`). Three sources pass it
 * on in text (docs/tls.md#certificate-bound-tokens-rfc-8705):
 *
 * - a URL-encoded PEM: Envoy ext_authz `attributes.source.certificate`, nginx `$ssl_client_escaped_cert`
 *   (ingress-nginx `ssl-client-cert` with `auth-tls-pass-certificate-to-upstream`);
 * - Envoy's `x-forwarded-client-cert` (XFCC): `;`-separated `Key=Value` pairs per certificate, elements
 *   `,`-separated, one per proxy hop; `Hash=` is the hex SHA-256 of the DER, `Cert=` the URL-encoded PEM.
 *   The last element is the one the nearest proxy (the trusted one) added.
 *
 * Whoever passes it on must be trusted (checked by the caller): anyone else could name any certificate.
 * A value that is present but unreadable is refused (`certificate_malformed`), never read as "no
 * certificate": that would turn a broken ingress config into requests judged without their certificate.
 */
import { X509Certificate, hash } from 'node:crypto'
import { deny, type GatewayError } from '../shared/errors.js'

/** Longest certificate text read, bytes: a chain of a few certificates, URL-encoded, is well under it. */
const MAX_CERTIFICATE_TEXT = 32 * 1024

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/

const HEX_SHA256 = /^[0-9a-fA-F]{64}$/

function malformed (detail: string): GatewayError {
  return deny.badRequest('certificate_malformed', 'the client certificate could not be read', detail)
}

/** The thumbprint of a DER certificate. */
export function derThumbprint (der: Buffer): string {
  return hash('sha256', der, 'base64url')
}

/**
 * The thumbprint of the first certificate in a PEM text, which may be URL-encoded (the leaf comes first
 * in every source above).
 *
 * @throws GatewayError 400 `certificate_malformed` when no certificate can be read from it.
 */
export function pemThumbprint (text: string): string {
  if (text.length > MAX_CERTIFICATE_TEXT) throw malformed('the certificate text is too long')
  let pem: string
  try {
    pem = text.includes('%') ? decodeURIComponent(text) : text
  } catch {
    throw malformed('the certificate is not valid URL encoding')
  }
  const block = PEM_BLOCK.exec(pem)
  if (block === null) throw malformed('no PEM certificate block')
  try {
    return derThumbprint(new X509Certificate(block[0]).raw)
  } catch {
    throw malformed('the PEM block is not an X.509 certificate')
  }
}

/** The `Key=Value` pairs of one XFCC element; values may be quoted. */
function xfccPairs (element: string): Map<string, string> {
  const pairs = new Map<string, string>()
  for (const part of element.match(/(?:[^;"]|"(?:[^"\\]|\\.)*")+/g) ?? []) {
    const at = part.indexOf('=')
    if (at < 1) continue
    const value = part.slice(at + 1).trim()
    pairs.set(part.slice(0, at).trim().toLowerCase(), value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value)
  }
  return pairs
}

/**
 * The thumbprint named by an `x-forwarded-client-cert` value: the last element's `Hash=` (hex SHA-256 of
 * the DER), else its `Cert=`. Undefined when that element names no client certificate (only `By=`, a
 * connection without one).
 *
 * @throws GatewayError 400 `certificate_malformed` when the value cannot be read.
 */
export function xfccThumbprint (value: string): string | undefined {
  if (value.length > MAX_CERTIFICATE_TEXT) throw malformed('x-forwarded-client-cert is too long')
  const elements = value.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? []
  const last = elements.at(-1)
  if (last === undefined) throw malformed('x-forwarded-client-cert is empty')
  const pairs = xfccPairs(last)
  const hex = pairs.get('hash')
  if (hex !== undefined) {
    if (!HEX_SHA256.test(hex)) throw malformed('x-forwarded-client-cert Hash is not a hex SHA-256')
    return Buffer.from(hex, 'hex').toString('base64url')
  }
  const cert = pairs.get('cert')
  return cert === undefined ? undefined : pemThumbprint(cert)
}
