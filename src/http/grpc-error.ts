/**
 * A refusal or an upstream failure answered to a gRPC client (docs/grpc.md, "Denials"). A gRPC client
 * reads the status of a call from `grpc-status`, not from the HTTP status, and reports anything but a
 * 200 with `content-type: application/grpc` as a transport failure (UNKNOWN or UNAVAILABLE, the reason
 * lost). So, as Envoy answers, a gRPC request is refused with HTTP 200 and a trailers-only response: the
 * headers carry `grpc-status` mapped from the HTTP status and `grpc-message`, the public description
 * percent-encoded as the gRPC wire format requires. The token is never part of it: the description is
 * one of the fixed texts of docs/responses.md.
 *
 * Only the proxy listener answers this way. Forward auth (the admin listener) answers its caller, an
 * nginx or Traefik that reads the HTTP status: a 200 there would be an allow.
 */
import type { FastifyReply } from 'fastify'
import type { GatewayError } from '../shared/errors.js'
import { grpcStatusOf } from '../shared/grpc-status.js'
import { errorHeaders, sendError } from './reply-error.js'

/** `application/grpc`, `application/grpc+proto`, `application/grpc;…`: not gRPC-Web, which is answered as HTTP. */
const GRPC_CONTENT_TYPE = /^application\/grpc(?:[+;]|$)/i

/** Whether a request is a gRPC call, by its content type. */
export function isGrpcRequest (contentType: string | undefined): boolean {
  return contentType !== undefined && GRPC_CONTENT_TYPE.test(contentType)
}

/**
 * `grpc-message` as the gRPC HTTP/2 protocol spells it: UTF-8, every byte outside visible ASCII and space,
 * and `%` itself, written `%XX`.
 */
export function grpcMessage (text: string): string {
  let out = ''
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/**
 * The headers of a trailers-only gRPC answer to `err`: status, message, and the fields a client may act
 * on (a challenge, a DPoP nonce, Retry-After, RateLimit), as response metadata.
 */
export function grpcErrorHeaders (err: GatewayError): Record<string, string> {
  const { 'content-type': _json, 'cache-control': _noStore, ...fields } = errorHeaders(err)
  return {
    ...fields,
    ...err.headers,
    'content-type': 'application/grpc',
    'grpc-status': String(grpcStatusOf(err.status)),
    'grpc-message': grpcMessage(err.description)
  }
}

/**
 * Answers `err` on the proxy listener: a gRPC call gets a trailers-only gRPC status, anything else the
 * JSON error of `sendError`. The headers are set and the response ended with no body, which HTTP/2 sends
 * as one HEADERS frame that ends the stream: what gRPC calls trailers-only.
 */
export function sendProxyError (reply: FastifyReply, err: GatewayError): FastifyReply {
  if (!isGrpcRequest(reply.request.raw.headers['content-type'])) return sendError(reply, err)
  reply.hijack()
  const raw = reply.raw
  raw.statusCode = 200
  for (const [name, value] of Object.entries(grpcErrorHeaders(err))) raw.setHeader(name, value)
  raw.end()
  return reply
}
