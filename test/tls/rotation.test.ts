/**
 * Certificate rotation without a restart (docs/tls.md): the files are replaced as a Kubernetes secret
 * volume replaces them (a new timestamped directory, then an atomic swap of the `..data` symlink), a new
 * handshake gets the new certificate, and connections already open (HTTP/1.1 keep-alive, an h2 session)
 * keep working. A bad new set is refused and the certificate in force stays.
 */
import https from 'node:https'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import t from 'tap'
import { certificateKit } from '../helpers/certificates.js'
import { issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import { secretVolume } from '../helpers/secret-volume.js'
import { h2Request, h2Session, httpsRequest } from '../helpers/tls-clients.js'

const kit = certificateKit()
t.teardown(() => { kit.remove() })
const first = kit.issue('first')
const second = kit.issue('second')
const third = kit.issue('third')
const caPem = kit.ca.pem

/** Where the gateway reads its certificate: a secret volume swapped by symlink, as the kubelet does. */
const volume = secretVolume(join(kit.dir, 'secret'), first, first)

/** Waits, bounded in count (100 × 100 ms), for a log line with `msg` beyond the first `after` lines. */
async function logged (gw: TestGateway, msg: string, after: number): Promise<Record<string, unknown> | undefined> {
  for (let i = 0; i < 100; i++) {
    const line = gw.logs.slice(after).find((l) => l.msg === msg)
    if (line !== undefined) return line
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return undefined
}

const fresh = async (url: string): Promise<string> => (await httpsRequest(`${url}/open/fresh`, { ca: caPem })).peer.serialNumber

t.test('rotation by a symlink swap: new handshakes get the new certificate, open connections go on', async (t) => {
  const { echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { proxy: { http2: true, tls: { cert: volume.cert, key: volume.key } } },
    upstreams: { echo: { url: echo.url } },
    routes: [{ id: 'open', match: { path: '/open', prefix: true }, upstream: 'echo', auth: 'none' }]
  })
  t.teardown(() => gw.close())
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: caPem })
  t.teardown(() => agent.destroy())
  const kept = await httpsRequest(`${gw.proxyUrl}/open/kept`, { agent })
  t.equal(kept.peer.serialNumber, first.serial)
  const session = await h2Session(gw.proxyUrl, { ca: caPem })
  t.teardown(() => session.close())
  t.equal((await h2Request(session, { ':path': '/open/h2' })).status, 200)
  t.equal(await fresh(gw.proxyUrl), first.serial)

  let mark = gw.logs.length
  volume.publish(second, second)
  const loaded = await logged(gw, 'TLS certificate loaded', mark)
  t.ok(loaded, 'the rotation was noticed')
  t.equal((loaded?.certificate as { serial?: string } | undefined)?.serial, second.serial, 'the log names the new certificate')
  t.equal(await fresh(gw.proxyUrl), second.serial, 'a new handshake gets the new certificate')

  const again = await httpsRequest(`${gw.proxyUrl}/open/kept-again`, { agent })
  t.equal(again.status, 200, 'the keep-alive connection still works')
  t.equal(again.peer.serialNumber, first.serial, 'on the connection made with the old certificate')
  const sockets = Object.values(agent.freeSockets).flat() as TLSSocket[]
  t.equal(sockets.length, 1, 'one connection all along')
  t.equal((await h2Request(session, { ':path': '/open/h2-again' })).status, 200, 'the h2 session still works')

  mark = gw.logs.length
  volume.publish(third, second)
  const refused = await logged(gw, 'TLS files refused; the certificate in force stays', mark)
  t.ok(refused, 'a certificate with the key of another is refused')
  t.same((refused?.problems as Array<{ path: string }> | undefined)?.map((p) => p.path), ['server.proxy.tls.key'])
  t.equal(await fresh(gw.proxyUrl), second.serial, 'the certificate in force stays')
  t.notOk(gw.rawLog().includes('PRIVATE KEY'), 'no key material in the log')
  t.same(echo.received.map((r) => r.url), ['/open/kept', '/open/h2', '/open/fresh', '/open/fresh', '/open/kept-again', '/open/h2-again', '/open/fresh'])

  // A config reload (SIGHUP) re-reads the files too, whether or not a watcher saw them change.
  volume.publish(first, first)
  mark = gw.logs.length
  t.ok(await gw.gateway.reload(gw.gateway.current().config))
  const reread = gw.logs.slice(mark).find((l) => l.msg === 'TLS certificate loaded' && l.trigger === 'config')
  t.equal((reread?.certificate as { serial?: string } | undefined)?.serial, first.serial, 'the reload read the files as they are now')
  t.equal(await fresh(gw.proxyUrl), first.serial)
})
