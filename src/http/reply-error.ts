/**
 * The one place a GatewayError becomes a response: JSON body `{error, error_description}`, no-store,
 * and for 401/403 an RFC 6750 `WWW-Authenticate` challenge. A request that brought no credentials gets
 * the bare challenge (RFC 6750 §3.1). Only the fixed public description is sent; detail stays in the log.
 */
import type { ServerResponse } from 'node:http'
import type { FastifyReply } from 'fastify'
import type { GatewayError } from '../shared/errors.js'

export const REALM = 'scopegate'

function quoted (text: string): string {
  return `"${text.replace(/["\\]/g, '\\$&')}"`
}

export function wwwAuthenticate (err: GatewayError): string {
  if (err.dpop !== undefined) return dpopChallenge(err, err.dpop.algs)
  let value = `Bearer realm=${quoted(REALM)}`
  if (err.code === 'unauthorized') return value
  value += `, error=${quoted(err.code)}, error_description=${quoted(err.description)}`
  if (err.scope !== undefined) value += `, scope=${quoted(err.scope)}`
  return value
}

/**
 * RFC 9449 §7.1: the DPoP scheme's challenge names the accepted proof algorithms. A request that brought
 * no credentials gets no error code, as with Bearer.
 */
function dpopChallenge (err: GatewayError, algs: string): string {
  let value = `DPoP realm=${quoted(REALM)}`
  if (err.code !== 'unauthorized') value += `, error=${quoted(err.code)}, error_description=${quoted(err.description)}`
  return `${value}, algs=${quoted(algs)}`
}

export function errorHeaders (err: GatewayError): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store'
  }
  if (err.status === 401 || err.status === 403) headers['www-authenticate'] = wwwAuthenticate(err)
  if (err.retryAfter !== undefined) headers['retry-after'] = String(err.retryAfter)
  if (err.dpop?.nonce !== undefined) headers['dpop-nonce'] = err.dpop.nonce
  return headers
}

export function errorBody (err: GatewayError): string {
  return JSON.stringify({ error: err.code, error_description: err.description })
}

interface Rendered {
  headers: Readonly<Record<string, string>>
  body: string
  /** The headers of the same answer without its body: no content-type. */
  bodiless: Readonly<Record<string, string>>
  /**
   * `headers` and then `content-length` as one flat name, value list, for `writeHead`: what Fastify writes
   * for `sendError`, in its order, so `writeError` answers the same bytes without a Fastify reply.
   */
  flat: readonly string[]
}

/**
 * Rendered answers by content. Denials repeat (a flood of bad tokens is one answer many times), and the
 * kinds are few: the codes and descriptions of docs/responses.md, the scopes routes require, Retry-After seconds.
 * Bounded all the same: emptied when full.
 */
const rendered = new Map<string, Rendered>()
const RENDERED_MAX = 512

function render (err: GatewayError): Rendered {
  const key = `${err.status}\0${err.code}\0${err.description}\0${err.scope ?? ''}\0${err.retryAfter ?? ''}\0${err.dpop?.algs ?? ''}\0${err.dpop?.nonce ?? ''}`
  let answer = rendered.get(key)
  if (answer === undefined) {
    if (rendered.size >= RENDERED_MAX) rendered.clear()
    const headers = errorHeaders(err)
    const { 'content-type': _json, ...bodiless } = headers
    const body = errorBody(err)
    const flat = Object.freeze([...Object.entries(headers).flat(), 'content-length', String(Buffer.byteLength(body))])
    answer = { headers: Object.freeze(headers), body, bodiless: Object.freeze(bodiless), flat }
    rendered.set(key, answer)
  }
  return answer
}

/** `extra`: fields that replace the rendered ones, such as a forward-auth denial's own `cache-control`. */
export function sendError (reply: FastifyReply, err: GatewayError, extra?: Readonly<Record<string, string>>): FastifyReply {
  const { headers, body } = render(err)
  reply.code(err.status).headers(headers)
  // Per-request fields (a 429's RateLimit) are added here, not rendered: they would fill the cache with one-offs.
  if (err.headers !== undefined) reply.headers(err.headers)
  if (extra !== undefined) reply.headers(extra)
  return reply.send(body)
}

/**
 * The answer of `sendError` written on Node's own response, for a request refused before Fastify made a
 * reply for it (`early-refusal.ts`): the same status, headers in the same order, and body. `before`: the
 * fields a CORS route adds ahead of them (`responseCorsHeaders`), as a flat list; `finished` runs once the
 * response is written, as Fastify's `onResponse` would. Not for an error with per-request `headers`.
 */
export function writeError (res: ServerResponse, err: GatewayError, before: readonly string[] | null, finished: () => void): void {
  const { flat, body } = render(err)
  res.writeHead(err.status, before === null ? flat as string[] : [...before, ...flat])
  res.end(body, finished)
}

/**
 * The same answer with `Content-Length: 0`: status, challenge, `no-store` and `Retry-After`, no body. For
 * a caller that reads the headers only and would have to throw the connection away to skip a body:
 * nginx `auth_request` (see `forward-auth-answer.ts`, `denialWithoutBody`).
 */
export function sendErrorWithoutBody (reply: FastifyReply, err: GatewayError, extra?: Readonly<Record<string, string>>): FastifyReply {
  reply.code(err.status).headers(render(err).bodiless)
  if (err.headers !== undefined) reply.headers(err.headers)
  if (extra !== undefined) reply.headers(extra)
  return reply.send()
}

/** A whole HTTP/1.1 response, for errors answered on the raw socket before any request object exists. */
export function rawErrorResponse (err: GatewayError, statusText: string): string {
  const body = errorBody(err)
  // The per-request fields too (a 429's RateLimit on a WebSocket handshake): they are scopegate's own values.
  const headers = { ...errorHeaders(err), ...err.headers, 'content-length': String(Buffer.byteLength(body)), connection: 'close' }
  return `HTTP/1.1 ${err.status} ${statusText}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`
}
