/**
 * A plain HTTP client for tests, on node:http so a test can send what fetch refuses to: duplicated
 * headers, a Connection header naming others, raw request-targets with dot segments.
 */
import http from 'node:http'

export interface TestResponse {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any
}

export interface TestRequest {
  method?: string
  /** An object, or a flat raw list `[name, value, name, value, …]` to repeat a header. */
  headers?: Record<string, string> | string[]
  /** A body; a list is written chunk by chunk with no Content-Length (Transfer-Encoding: chunked). */
  body?: string | Buffer | string[]
  /** Milliseconds before the request is abandoned. */
  timeoutMs?: number
}

/** A response read to its end: status, headers, the body as text and, when it is JSON, parsed. */
export function readResponse (res: http.IncomingMessage): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    res.on('data', (chunk: Buffer) => chunks.push(chunk))
    res.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      let json: unknown
      try { json = JSON.parse(body) } catch { json = undefined }
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json })
    })
    res.on('error', reject)
  })
}

/** Send a request with `target` used verbatim as the request-target (no URL normalization by the client). */
export function send (base: string, target: string, request: TestRequest = {}): Promise<TestResponse> {
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: url.hostname,
      port: url.port,
      method: request.method ?? 'GET',
      path: target,
      headers: request.headers,
      agent: false,
      timeout: request.timeoutMs ?? 10_000
    }, (res) => { readResponse(res).then(resolve, reject) })
    req.on('timeout', () => req.destroy(new Error('test request timed out')))
    req.on('error', reject)
    if (Array.isArray(request.body)) {
      for (const chunk of request.body) req.write(chunk)
      req.end()
    } else {
      req.end(request.body)
    }
  })
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
