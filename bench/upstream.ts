/** The benchmark's upstream: the cheapest useful answer, so the proxies' own cost dominates. */
import { createServer } from 'node:http'

const port = Number(process.argv[2])
const body = JSON.stringify({ ok: true })
createServer((req, res) => {
  req.resume()
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
}).listen(port, '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
