/**
 * Clients for the TLS and HTTP/2 listener tests: `node:https`, `node:http2` (over TLS or h2c by prior
 * knowledge) and curl, each bounded in time, each returning what the client saw.
 */
import { execFile } from 'node:child_process'
import http2, { type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2'
import https from 'node:https'
import type { PeerCertificate, TLSSocket } from 'node:tls'

export interface Seen {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  json: any
}

function parsed (status: number, headers: Seen['headers'], body: string): Seen {
  let json: unknown
  try { json = JSON.parse(body) } catch { json = undefined }
  return { status, headers, body, json }
}

export interface TlsClientOptions {
  ca?: string
  cert?: string
  key?: string
  /** Sent as SNI; default none (an IP address). */
  servername?: string
}

/** One HTTPS request on a fresh connection (or on `agent`'s), with the server's certificate. */
export function httpsRequest (url: string, options: TlsClientOptions & { method?: string, headers?: Record<string, string>, body?: string, agent?: https.Agent } = {}): Promise<Seen & { peer: PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method: options.method ?? 'GET',
      headers: options.headers,
      ca: options.ca,
      cert: options.cert,
      key: options.key,
      agent: options.agent ?? false,
      timeout: 10_000
    }, (res) => {
      const peer = (res.socket as TLSSocket).getPeerCertificate()
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => { resolve({ ...parsed(res.statusCode ?? 0, res.headers, Buffer.concat(chunks).toString('utf8')), peer }) })
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('test request timed out')))
    req.on('error', reject)
    req.end(options.body)
  })
}

/** An HTTP/2 session: `https://` over TLS (ALPN h2), `http://` as h2c by prior knowledge. */
export function h2Session (url: string, options: TlsClientOptions = {}): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, { ca: options.ca, cert: options.cert, key: options.key })
    const timer = setTimeout(() => { session.destroy(new Error('h2 connect timed out')) }, 10_000)
    session.once('connect', () => { clearTimeout(timer); resolve(session) })
    session.once('error', (err) => { clearTimeout(timer); reject(err) })
  })
}

/** One request on a session; `body` may be a Buffer or chunks written one by one. */
export function h2Request (session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer | Buffer[]): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined })
    const timer = setTimeout(() => { stream.close(http2.constants.NGHTTP2_CANCEL); reject(new Error('h2 request timed out')) }, 60_000)
    let status = 0
    let responseHeaders: Seen['headers'] = {}
    stream.on('response', (h) => {
      status = Number(h[':status'])
      responseHeaders = h as Seen['headers']
    })
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.on('end', () => { clearTimeout(timer); resolve(parsed(status, responseHeaders, Buffer.concat(chunks).toString('utf8'))) })
    stream.on('error', (err) => { clearTimeout(timer); reject(err) })
    if (Array.isArray(body)) {
      const write = (i: number): void => {
        if (i === body.length) { stream.end(); return }
        if (stream.write(body[i])) write(i + 1)
        else stream.once('drain', () => { write(i + 1) })
      }
      write(0)
    } else if (body !== undefined) stream.end(body)
  })
}

export interface CurlResult {
  /** curl's exit code (0: a response was received). */
  code: number
  status: number
  /** `%{http_version}`: 1.1 or 2. */
  httpVersion: string
  body: string
}

/** curl with `args` before the URL; the status and HTTP version are appended to the body by `-w`. */
export function curl (url: string, args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '20', '-o', '-', '-w', '\n%{http_code} %{http_version}', ...args, url], { timeout: 30_000 }, (err, stdout) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1
      const at = stdout.lastIndexOf('\n')
      const [status, version] = stdout.slice(at + 1).split(' ')
      resolve({ code, status: Number(status), httpVersion: version ?? '', body: stdout.slice(0, Math.max(0, at)) })
    })
  })
}
