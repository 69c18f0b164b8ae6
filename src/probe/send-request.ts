/**
 * One request of the probe, over a bare node:http(s) request rather than fetch: fetch (and WHATWG URL)
 * would resolve `%2e%2e` and `..` in the path before sending, which is exactly what the path tricks must
 * not have done for them. Redirects are never followed, to any host: a 3xx is reported as it is. Only
 * the status, the `Location`, and the `error` code of a JSON body are kept; the body is read up to a
 * bound and dropped.
 */
import http from 'node:http'
import https from 'node:https'

/** What the probe keeps of an answer. */
export interface ProbeAnswer {
  status: number
  /** Where a redirect points: the host of its `Location`, or `this host`. */
  redirectsTo?: string
  /** The `error` member of a JSON body (scopegate's stable error code), when there is one. */
  error?: string
}

export interface SendOptions {
  /** The Host header to send instead of the URL's, for a gateway reached by address. */
  host?: string
  /** Time allowed for the whole exchange, in milliseconds. */
  timeoutMs: number
}

/** Bytes of body read to find an `error` code; error bodies are far smaller. */
const BODY_LIMIT = 8192

function errorCode (body: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body)
    const error = (parsed as { error?: unknown } | null)?.error
    return typeof error === 'string' && /^[\w.-]{1,64}$/.test(error) ? error : undefined
  } catch {
    return undefined
  }
}

/**
 * Sends `GET target` to the origin of `url` with `headers`.
 * @throws Error when the origin cannot be reached, or does not answer within `timeoutMs`.
 */
export function sendProbeRequest (url: URL, target: string, headers: Record<string, string>, options: SendOptions): Promise<ProbeAnswer> {
  const client = url.protocol === 'https:' ? https : http
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1')
  return new Promise((resolve, reject) => {
    const req = client.request({
      hostname,
      port: url.port === '' ? undefined : Number(url.port),
      method: 'GET',
      path: target,
      headers: { ...headers, ...(options.host === undefined ? {} : { host: options.host }), 'user-agent': 'scopegate-probe' },
      // TLS server name: the Host sent, without its port; none for an IP address literal.
      servername: options.host?.replace(/:\d+$/, '') ?? (/^[\d.]+$|:/.test(hostname) ? undefined : hostname),
      agent: false
    })
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs)
    req.once('error', (err) => { clearTimeout(timer); reject(err) })
    req.once('response', (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
        if (body.length >= BODY_LIMIT) res.destroy()
      })
      const done = (): void => {
        clearTimeout(timer)
        const location = res.headers.location
        resolve({
          status: res.statusCode ?? 0,
          ...(location === undefined ? {} : { redirectsTo: redirectHost(location, url) }),
          ...optional(errorCode(body))
        })
      }
      res.once('end', done)
      res.once('close', done)
      res.once('error', () => { /* an answer cut short still has its status: 'close' resolves */ })
    })
    req.end()
  })
}

function redirectHost (location: string, url: URL): string {
  try {
    const to = new URL(location, url)
    return to.host === url.host ? 'this host' : to.host
  } catch {
    return 'an unreadable Location'
  }
}

function optional (error: string | undefined): { error?: string } {
  return error === undefined ? {} : { error }
}
