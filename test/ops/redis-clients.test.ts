/**
 * One Redis client per URL per process (docs/rate-limits.md#redis), against real `redis-server`s: rate
 * limits and the DPoP replay store on one URL make one connection (`CLIENT LIST` on the server); a reload
 * that keeps the URL keeps that connection (same client id), even with another key prefix; a reload to
 * another URL opens one connection there and closes the old one after the grace period; shutdown closes it.
 */
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { compileTestConfig, issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { makeProof, makeProofKey } from '../helpers/dpop.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'
import { waitFor } from './support.js'

const AUD = 'https://todo.api'
const OBSERVER = 'test-observer'

/** A client that looks at a server: the gateway's connections are every other client. */
async function observe (t: Test, server: TestRedis): Promise<{ gatewayClients: () => Promise<string[]>, keys: (pattern: string) => Promise<string[]> }> {
  const admin = new Redis(server.url, { connectionName: OBSERVER, maxRetriesPerRequest: 1 })
  t.teardown(() => { admin.disconnect() })
  return {
    // The id of each connection that is not ours, as CLIENT LIST shows them.
    gatewayClients: async () => {
      const list = await admin.client('LIST') as string
      return list.split('\n').filter((line) => line !== '' && !line.includes(`name=${OBSERVER}`)).map((line) => /\bid=(\d+)/.exec(line)?.[1] ?? '?')
    },
    keys: async (pattern) => (await admin.keys(pattern)).sort()
  }
}

t.test('rate limits and DPoP replay share one connection per URL, across reloads, closed on shutdown', async (t) => {
  const first = await startRedis()
  t.teardown(() => first.stop())
  const second = await startRedis()
  t.teardown(() => second.stop())
  const one = await observe(t, first)
  const two = await observe(t, second)
  const { key, jwks, echo } = await issuerAndEcho(t)
  const config = (url: string, keyPrefix: string, timeout = '1s'): Record<string, unknown> => ({
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { echo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'echo', rateLimit: { limit: 100, window: '1m', store: 'redis', onStoreError: 'closed' } }],
    dpop: { replay: { store: 'redis' } },
    redis: { url, keyPrefix, timeout }
  })
  const gw = await startGateway(config(first.url, 'a:'), { redisRetireGraceMs: 200 })
  t.teardown(() => gw.close())

  const client = await makeProofKey('ES256')
  const token = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', cnf: { jkt: client.jkt } })
  const host = 'api.example.com'
  const dpopRequest = async (): Promise<number> => {
    const proof = await makeProof(client, { htm: 'GET', htu: `http://${host}/todos`, token })
    return (await send(gw.proxyUrl, '/todos', { headers: { host, authorization: `DPoP ${token}`, dpop: proof } })).status
  }
  const bearerToken = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'bob' })
  const bearerRequest = async (): Promise<number> => (await send(gw.proxyUrl, '/todos', { headers: bearer(bearerToken) })).status

  t.equal(await dpopRequest(), 200, 'a DPoP request: the replay store and the rate limit use Redis')
  t.equal(await bearerRequest(), 200, 'a bearer request: the rate limit uses Redis')
  t.equal(echo.received.length, 2, 'the upstream saw both')
  t.equal((await one.keys('a:dpop:*')).length, 1, 'the proof is in Redis under the prefix')
  t.equal((await one.keys('a:rl:*')).length, 2, 'so are the two buckets')
  const connections = await one.gatewayClients()
  t.equal(connections.length, 1, 'one connection for both features')

  t.equal(await gw.gateway.reload(compileTestConfig(config(first.url, 'b:', '2s'))), true, 'reloaded: same URL, another prefix and timeout')
  t.equal(await dpopRequest(), 200)
  t.equal(await bearerRequest(), 200)
  t.equal((await one.keys('b:dpop:*')).length, 1, 'the new prefix applies to the replay store')
  t.equal((await one.keys('b:rl:*')).length, 2, 'and to the buckets')
  t.strictSame(await one.gatewayClients(), connections, 'the very same connection')
  t.equal(gw.gateway.redis?.options.commandTimeout, 2000, 'with the new timeout')

  t.equal(await gw.gateway.reload(compileTestConfig(config(second.url, 'b:'))), true, 'reloaded: another URL')
  t.equal(await dpopRequest(), 200)
  t.equal(await bearerRequest(), 200)
  t.equal((await two.keys('b:dpop:*')).length, 1, 'the replay store moved to the new Redis')
  t.equal((await two.keys('b:rl:*')).length, 2, 'and the buckets')
  t.equal((await two.gatewayClients()).length, 1, 'one connection to the new URL')
  t.strictSame(gw.logs.filter((l) => l.msg === 'the redis url changed: the connection follows').map((l) => l.change), ['another url'], 'logged once, on the move only')
  await waitFor('the old connection to close after the grace period', async () => (await one.gatewayClients()).length === 0)
  t.equal(echo.received.length, 6)
  t.equal((await send(gw.adminUrl, '/readyz')).json?.redis?.state, 'connected', 'readiness follows the client in force')

  await gw.close()
  await waitFor('shutdown to close the connection', async () => (await two.gatewayClients()).length === 0)
  t.pass('no connection left on either server')
  t.notOk(gw.rawLog().includes(second.url), 'the Redis URL (which may hold a password) is not logged')
})
