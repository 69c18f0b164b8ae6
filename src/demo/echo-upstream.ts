/** The demo's upstream: answers every request with what it received, so the narrowed identity is visible. */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

export async function startEchoUpstream (port = 0): Promise<{ url: string, close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const identity = Object.fromEntries(Object.entries(req.headers).filter(([name]) => name.startsWith('x-auth-')))
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ upstream: 'todo-api (echo)', method: req.method, path: req.url, identity, authorization: req.headers.authorization === undefined ? 'absent' : 'present' }, null, 2) + '\n')
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => resolve())) }
  }
}
