/**
 * Who may read the status page (docs/observability.md#status-page). It shows subjects and client ids,
 * which are personal data, so it is closed unless one of these holds:
 * - the request carries the admin token (`server.admin.status.token`) as `Authorization: Bearer <token>`,
 *   or as the password of `Basic` (so a browser can ask for it); compared in constant time;
 * - the TCP peer is a loopback address and the request names no forwarded client (`X-Forwarded-For`,
 *   `Forwarded`, `X-Real-IP`): a reverse proxy on the same host relays other people's requests from
 *   loopback, and those headers show it. `server.trustProxy` plays no part: the peer is the socket's.
 * A wrong token is refused even from loopback. Everything here is a pure function of plain values.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { SecretValue } from '../config/types.js'
import { unmapIPv4 } from '../net/ip-matcher.js'

export type StatusAccess =
  | { allowed: true }
  | { allowed: false, status: 401 | 403, error: string, description: string, challenge: boolean }

export interface StatusRequest {
  /** The socket's remote address. */
  peer: string
  authorization: string | undefined
  /** Whether the request carries a header naming a forwarded client. */
  forwarded: boolean
}

/** The public answers, one per refusal (docs/responses.md, "Admin listener"). */
const NO_TOKEN = { allowed: false, status: 401, error: 'unauthorized', description: 'the status page requires the admin token', challenge: true } as const
const BAD_TOKEN = { allowed: false, status: 401, error: 'invalid_token', description: 'the admin token is not valid', challenge: true } as const
const LOOPBACK_ONLY = { allowed: false, status: 403, error: 'access_denied', description: 'the status page is served to loopback clients only', challenge: false } as const

/** Headers that show a request was relayed for another client. */
export const FORWARDING_HEADERS = ['x-forwarded-for', 'forwarded', 'x-real-ip'] as const

/** 127.0.0.0/8, ::1, and their IPv4-mapped forms. */
export function isLoopback (address: string): boolean {
  const ip = unmapIPv4(address)
  return ip === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(ip)
}

/** The credential in a Bearer or Basic Authorization value (Basic: the password; any user name); null otherwise. */
function presented (authorization: string): string | null {
  const space = authorization.indexOf(' ')
  if (space < 0) return null
  const scheme = authorization.slice(0, space).toLowerCase()
  const value = authorization.slice(space + 1).trim()
  if (scheme === 'bearer') return value
  if (scheme !== 'basic') return null
  const decoded = Buffer.from(value, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  return colon < 0 ? null : decoded.slice(colon + 1)
}

/** Equal in constant time: both sides are hashed first, so neither length nor content leaks through timing. */
function sameSecret (a: string, b: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(a), digest(b))
}

export function statusAccess (request: StatusRequest, token: SecretValue | null): StatusAccess {
  if (token !== null && request.authorization !== undefined) {
    const credential = presented(request.authorization)
    return credential !== null && sameSecret(credential, token.reveal()) ? { allowed: true } : BAD_TOKEN
  }
  if (isLoopback(request.peer) && !request.forwarded) return { allowed: true }
  return token === null ? LOOPBACK_ONLY : NO_TOKEN
}
