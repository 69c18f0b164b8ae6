/**
 * An OTLP/HTTP endpoint that reads and drops what it gets, answering 200 with an empty protobuf response:
 * the tracing scenario's collector, in the load generator's process, so the measured cost is scopegate's
 * (building, batching, encoding and sending spans) and not a collector's.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export async function startOtlpSink (): Promise<{ url: string, requests: () => number, close: () => void }> {
  let requests = 0
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      requests++
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, requests: () => requests, close: () => { server.close() } }
}
