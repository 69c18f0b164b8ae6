/**
 * Requests Node cannot parse are answered straight on the socket (src/http/client-errors.ts): headers over
 * `server.maxHeaderSize` get 431, bytes that are not HTTP get 400. Each is still a decision: one decision
 * line (route, method and path null) and one count in `requests_total`, and the upstream sees nothing.
 */
import { connect } from 'node:net'
import t from 'tap'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'

/** Writes `bytes` on a fresh connection and reads until the gateway closes it (bounded: 5 s). */
function rawExchange (url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const chunks: Buffer[] = []
    socket.setTimeout(5000, () => { socket.destroy(new Error('no answer within 5 s')) })
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => { resolve(Buffer.concat(chunks).toString('latin1')) })
    socket.write(bytes)
  })
}

const bodyOf = (response: string): unknown => JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4))

t.test('answers written on the socket get a decision line and a count, and reach no upstream', async (t) => {
  const { jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { maxHeaderSize: 4096 },
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: ['https://todo.api'] }],
    upstreams: { echo: { url: echo.url } },
    routes: [{ id: 'open', match: { path: '/', prefix: true }, upstream: 'echo', auth: 'none' }]
  })
  t.teardown(() => gw.close())

  const cases: Array<[name: string, bytes: string, status: number, code: string, reason: string]> = [
    ['headers over maxHeaderSize', `GET /x HTTP/1.1\r\nhost: a\r\nx-padding: ${'p'.repeat(8192)}\r\n\r\n`, 431, 'request_header_fields_too_large', 'headers_too_large'],
    ['bytes that are not HTTP', 'NOT HTTP AT ALL\r\n\r\n', 400, 'invalid_request', 'request_malformed']
  ]
  for (const [name, bytes, status, code, reason] of cases) {
    const before = gw.decisions().length
    const response = await rawExchange(gw.proxyUrl, bytes)
    t.match(response, new RegExp(`^HTTP/1\\.1 ${status} `), `${name}: status`)
    t.match(bodyOf(response), { error: code }, `${name}: the documented error code`)
    const lines = gw.decisions().slice(before)
    t.equal(lines.length, 1, `${name}: one decision line`)
    t.match(lines[0], { route: null, method: null, path: null, decision: 'deny', reason, status, upstream: null, level: 40 }, `${name}: the line`)
  }
  t.equal(echo.received.length, 0, 'the upstream saw nothing')

  const metrics = await send(gw.adminUrl, '/metrics')
  t.match(metrics.body, 'scopegate_requests_total{route="",decision="deny",reason="headers_too_large"} 1')
  t.match(metrics.body, 'scopegate_requests_total{route="",decision="deny",reason="request_malformed"} 1')
})
