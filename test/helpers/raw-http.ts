/**
 * HTTP/1.1 over a raw TCP socket, for requests no HTTP client library will write: header names with
 * underscores, the same name in several spellings, a Connection header listing whatever the test needs.
 * The request is written as given, lines joined with CRLF, on a fresh connection used once.
 */
import net from 'node:net'

export interface RawResponse {
  status: number
  /** Response header names lower-cased; a repeated name keeps its last value. */
  headers: Record<string, string>
  body: string
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any
}

/** Decodes a chunked body (only what a test server sends: no trailers, no extensions). */
function unchunk (body: string): string {
  let out = ''
  let at = 0
  for (let guard = 0; guard < 100_000 && at < body.length; guard++) {
    const eol = body.indexOf('\r\n', at)
    if (eol === -1) break
    const size = Number.parseInt(body.slice(at, eol), 16)
    if (!(size > 0)) break
    out += body.slice(eol + 2, eol + 2 + size)
    at = eol + 2 + size + 2
  }
  return out
}

function parse (text: string): RawResponse | null {
  const split = text.indexOf('\r\n\r\n')
  if (split === -1) return null
  const [statusLine = '', ...headerLines] = text.slice(0, split).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of headerLines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  let payload = text.slice(split + 4)
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    if (!payload.endsWith('0\r\n\r\n')) return null
    payload = unchunk(payload)
  } else if (headers['content-length'] !== undefined) {
    if (Buffer.byteLength(payload) < Number(headers['content-length'])) return null
  }
  let json: unknown
  try { json = JSON.parse(payload) } catch { json = undefined }
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, body: payload, json }
}

/**
 * Sends `head` (request line and headers, one per line, without the blank line) and `body` to the
 * server at `base`, and resolves with the response: once its body is complete (Content-Length or the
 * last chunk), or the server closes the connection. A response is not assumed to honour
 * `Connection: close`.
 */
export function rawRequest (base: string, head: string[], body = '', timeoutMs = 10_000): Promise<RawResponse> {
  const url = new URL(base)
  const lines = head.some((line) => /^connection:/i.test(line)) ? head : [...head, 'Connection: close']
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname)
    const chunks: Buffer[] = []
    const timer = setTimeout(() => { socket.destroy(new Error('raw request timed out')) }, timeoutMs)
    const finish = (response: RawResponse): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(response)
    }
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      const response = parse(Buffer.concat(chunks).toString('utf8'))
      if (response !== null) finish(response)
    })
    socket.on('error', (err) => { clearTimeout(timer); reject(err) })
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      finish(parse(text) ?? { status: 0, headers: {}, body: text, json: undefined })
    })
    socket.write(`${lines.join('\r\n')}\r\n\r\n${body}`)
  })
}
