/**
 * The DPoP replay store in Redis (docs/dpop.md): two gateways (each with its own engine and Redis client,
 * as two replicas have) share one redis-server, so a proof accepted by one is refused by the other. With
 * Redis gone, a proof cannot be checked for replay and is refused with 503 (`onStoreFailure: deny`).
 */
import t from 'tap'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { makeProof, makeProofKey } from '../helpers/dpop.js'
import { startRedis } from '../helpers/redis-server.js'

const TODO = 'https://todo.api'

t.test('two gateways sharing Redis refuse a proof replayed from one to the other; Redis down: 503', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const { key, jwks, echo } = await issuerAndEcho(t)
  const config = {
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [TODO] }],
    upstreams: { echo: { url: echo.url } },
    routes: [{ id: 'todos', match: { path: '/todos', prefix: true }, upstream: 'echo' }],
    dpop: { replay: { store: 'redis' } },
    redis: { url: redis.url, keyPrefix: `test-${process.pid}:`, timeout: '300ms' }
  }
  const one = await startGateway(config)
  t.teardown(() => one.close())
  const two = await startGateway(config)
  t.teardown(() => two.close())

  const client = await makeProofKey('ES256')
  const token = await mintToken(key, { iss: jwks.issuer, aud: TODO, sub: 'alice', cnf: { jkt: client.jkt } })
  // Both replicas serve one public host, as behind a load balancer: the proof names it.
  const host = 'api.example.com'
  const proof = await makeProof(client, { htm: 'GET', htu: `http://${host}/todos`, token })
  const headers = { host, authorization: `DPoP ${token}`, dpop: proof }

  const first = await send(one.proxyUrl, '/todos', { headers })
  t.equal(first.status, 200, 'the first replica accepts the proof')
  t.equal(echo.received.length, 1, 'and forwards it')
  const replayed = await send(two.proxyUrl, '/todos', { headers })
  t.equal(replayed.status, 401, 'the second replica refuses the same proof')
  t.equal(replayed.json?.error, 'invalid_dpop_proof', 'invalid_dpop_proof')
  t.match(replayed.headers['www-authenticate'], /^DPoP realm="scopegate", error="invalid_dpop_proof"/, 'with the DPoP challenge')
  t.equal(two.decisions().at(-1)?.reason, 'dpop_proof_replayed', 'as a replay')
  t.equal((await send(one.proxyUrl, '/todos', { headers })).status, 401, 'and so does the first, a second time')
  t.equal(echo.received.length, 1, 'the upstream saw the proof once')

  await redis.stop()
  const fresh = await makeProof(client, { htm: 'GET', htu: `http://${host}/todos`, token })
  const down = await send(one.proxyUrl, '/todos', { headers: { ...headers, dpop: fresh } })
  t.equal(down.status, 503, 'Redis down: 503')
  t.equal(down.json?.error, 'temporarily_unavailable', 'temporarily_unavailable')
  t.equal(down.headers['retry-after'], '1', 'with Retry-After')
  t.equal(one.decisions().at(-1)?.reason, 'dpop_replay_store_unavailable', 'the decision log says why')
  t.equal(echo.received.length, 1, 'the upstream saw nothing')
})
