/**
 * Splits a compact JWS and decodes its header and payload, before anything is trusted. Only shapes are
 * checked here; `verify-token.ts` decides what the values mean.
 */
import { deny } from '../shared/errors.js'

export interface JwtHeader {
  alg?: unknown
  kid?: unknown
  typ?: unknown
  crit?: unknown
  [name: string]: unknown
}

export type JwtPayload = Record<string, unknown>

export interface ParsedJwt {
  header: JwtHeader
  payload: JwtPayload
  /** `base64url(header) + '.' + base64url(payload)`: the bytes the signature covers. */
  signingInput: string
  signature: Buffer
}

const BASE64URL = /^[A-Za-z0-9_-]+$/

function decodeJson (segment: string, what: string): Record<string, unknown> {
  if (!BASE64URL.test(segment)) throw malformed(`${what} is not base64url`)
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
  } catch {
    throw malformed(`${what} is not JSON`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(`${what} is not a JSON object`)
  return value as Record<string, unknown>
}

function malformed (detail: string): Error {
  return deny.invalidToken('token_malformed', 'the token is not a well-formed JWT', detail)
}

export function parseJwt (token: string): ParsedJwt {
  const first = token.indexOf('.')
  const second = first < 0 ? -1 : token.indexOf('.', first + 1)
  if (first <= 0 || second < 0 || token.indexOf('.', second + 1) >= 0) throw malformed('not three segments')
  const signatureText = token.slice(second + 1)
  const signature = Buffer.from(signatureText, 'base64url')
  // Only the canonical spelling (RFC 4648 §3.5: no padding, no other alphabet, unused bits zero), which
  // re-encoding the decoded bytes gives back. Otherwise a token with its last character changed could
  // decode to the same signature and verify.
  if (signatureText === '' || signature.toString('base64url') !== signatureText) throw malformed('signature is not canonical base64url')
  const header = decodeJson(token.slice(0, first), 'header') as JwtHeader
  const payload = decodeJson(token.slice(first + 1, second), 'payload')
  return { header, payload, signingInput: token.slice(0, second), signature }
}
