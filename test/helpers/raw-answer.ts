/**
 * One request whose answer is kept field by field, in order and as sent, for tests that compare two
 * paths' answers exactly (the early refusal against `onRequest`). Node's own fields (Date, Connection,
 * Keep-Alive) are the same on every path and are left out.
 */
import http from 'node:http'

/** The answer: status, the fields as [name, value, name, value, …] in order, and the body as text. */
export interface RawAnswer { status: number, rawHeaders: string[], body: string }

/** Sends one request to `base` + `path` (10 s socket timeout); `agent` false opens a connection of its own. */
export function rawAnswer (base: string, path: string, headers: Record<string, string | string[]> = {}, method = 'GET', agent: http.Agent | false = false): Promise<RawAnswer> {
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, method, headers, agent, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        const rawHeaders: string[] = []
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          const name = res.rawHeaders[i] ?? ''
          if (!/^(date|connection|keep-alive)$/i.test(name)) rawHeaders.push(name, res.rawHeaders[i + 1] ?? '')
        }
        resolve({ status: res.statusCode ?? 0, rawHeaders, body: Buffer.concat(chunks).toString('utf8') })
      })
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end()
  })
}
