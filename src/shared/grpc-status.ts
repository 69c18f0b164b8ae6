/**
 * gRPC status codes (google.rpc.Code, https://grpc.github.io/grpc/core/md_doc_statuscodes.html) and the one
 * table from the HTTP status scopegate answers with to the gRPC code that says the same (docs/grpc.md).
 * Both gRPC surfaces take their codes from here: the proxy's trailers-only answers to gRPC clients
 * (`http/grpc-error.ts`) and Envoy ext_authz's CheckResponse (`grpc/check-response.ts`).
 */

/** The gRPC status codes scopegate answers with. */
export const GRPC_STATUS = {
  OK: 0,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16
} as const

/** The gRPC status of an HTTP status scopegate answers with (the table of docs/grpc.md). */
export function grpcStatusOf (httpStatus: number): number {
  switch (httpStatus) {
    case 401: return GRPC_STATUS.UNAUTHENTICATED
    case 403: return GRPC_STATUS.PERMISSION_DENIED
    case 429: return GRPC_STATUS.RESOURCE_EXHAUSTED
    case 404: return GRPC_STATUS.UNIMPLEMENTED
    case 502: case 503: case 504: return GRPC_STATUS.UNAVAILABLE
    case 500: return GRPC_STATUS.INTERNAL
    default: return httpStatus >= 400 && httpStatus < 500 ? GRPC_STATUS.INVALID_ARGUMENT : GRPC_STATUS.UNKNOWN
  }
}
