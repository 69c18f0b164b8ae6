/**
 * What the client receives of the upstream's response headers (docs/proxying.md): everything but the
 * hop-by-hop headers, which describe the upstream's connection to scopegate. An upstream's
 * `Connection: keep-alive` must not keep open a connection the client asked to close, and a header the
 * upstream's `Connection` names must not reach the client.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { mintToken } from '../helpers/jwks-server.js'
import { rawExchange } from './raw-socket.js'

const API = 'https://hops.api'

t.test('hop-by-hop response headers stay between the upstream and scopegate', async (t) => {
  const { key, jwks } = await issuerAndEcho(t)
  let hits = 0
  const upstream = createServer((_req, res) => {
    hits++
    res.writeHead(200, {
      connection: 'keep-alive, x-upstream-hop',
      'keep-alive': 'timeout=5, max=1000',
      'proxy-connection': 'keep-alive',
      'x-upstream-hop': 'meant for scopegate only',
      'x-app': 'kept',
      'content-type': 'text/plain',
      'content-length': '2'
    })
    res.end('ok')
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { upstream.closeAllConnections(); upstream.close() })
  const gw = await startGateway({
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { app: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` } },
    routes: [{ id: 'api', match: { path: '/api', prefix: true }, upstream: 'app' }]
  })
  t.teardown(() => gw.close())
  const token = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice' })
  const host = new URL(gw.proxyUrl).host
  const head = (text: string): string => text.slice(0, text.indexOf('\r\n\r\n')).toLowerCase()

  for (const connection of ['close', 'keep-alive']) {
    await t.test(`a client that sends Connection: ${connection}`, async (t) => {
      const before = hits
      const answer = await rawExchange(gw.proxyUrl, `GET /api/x HTTP/1.1\r\nHost: ${host}\r\nConnection: ${connection}\r\nAuthorization: Bearer ${token}\r\n\r\n`)
      t.equal(answer.status, 200)
      t.equal(hits, before + 1, 'the upstream answered once')
      const lines = head(answer.text).split('\r\n')
      t.ok(lines.includes('x-app: kept'), 'end-to-end headers are passed on')
      t.notOk(lines.some((l) => l.startsWith('x-upstream-hop:')), 'a header the upstream\'s Connection names is removed')
      t.notOk(lines.some((l) => l.startsWith('proxy-connection:')), 'proxy-connection is removed')
      t.notOk(lines.includes('keep-alive: timeout=5, max=1000'), 'the upstream\'s own keep-alive parameters are removed')
      t.notOk(lines.some((l) => l.startsWith('connection:') && l.includes('x-upstream-hop')), 'the upstream\'s Connection is not passed on')
      if (connection === 'close') {
        t.ok(lines.includes('connection: close'), 'the client\'s close is answered with close')
        t.ok(answer.closed, 'and the connection is closed')
      } else {
        t.ok(lines.includes('connection: keep-alive'), 'a keep-alive client keeps its connection')
        t.notOk(answer.closed)
      }
    })
  }
})
