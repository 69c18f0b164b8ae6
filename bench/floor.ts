/**
 * The floor of a rejection in Node on this host: a bare `http.createServer` that answers every request
 * with the same 401 scopegate sends for a bad token (status, the same four headers, the same body), built
 * once. It reads no header and decides nothing, so what it costs is Node's HTTP parser, the request and
 * response objects and the socket write: what any Node gateway pays before doing anything of its own.
 * `bench:cpu` runs it beside scopegate and HAProxy on the rejection loads (`CPU_VS=haproxy`).
 */
import { createServer } from 'node:http'

const port = Number(process.argv[2])
const body = Buffer.from('{"error":"invalid_token","error_description":"the token signature is invalid"}')
const headers = [
  'content-type', 'application/json; charset=utf-8',
  'cache-control', 'no-store',
  'www-authenticate', 'Bearer realm="scopegate", error="invalid_token", error_description="the token signature is invalid"',
  'content-length', String(body.length)
]
createServer((req, res) => {
  req.resume()
  res.writeHead(401, headers).end(body)
}).listen(port, '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
