/**
 * Key fetches shared by a cluster's workers, in one process: three workers' key stores, each with its own
 * `WorkerKeyFetch`, connected to one `KeyFetchHost` (the primary's side) by an in-process channel that
 * delivers every message on a later turn, as IPC does; a real JWKS server counts what the issuer sees.
 * The clock of the stores and the host is injected; the only real waits are the bounded waits for a
 * primary that never answers (shortened here).
 */
import t, { type Test } from 'tap'
import type { CompiledIssuer, CompiledJwksOptions } from '../../src/config/types.js'
import type { FetchLike } from '../../src/keys/fetch-json.js'
import { KeyStore } from '../../src/keys/key-store.js'
import type { ToPrimary, ToWorker } from '../../src/process/cluster-ipc.js'
import { KeyFetchHost } from '../../src/process/key-fetch-host.js'
import { WorkerKeyFetch, type PrimaryChannel } from '../../src/process/worker-key-fetch.js'
import { compiledIssuer } from '../helpers/compiled-issuer.js'
import { denial } from '../helpers/denial.js'
import { makeKey, startJwksServer, type JwksServer, type TestKey } from '../helpers/jwks-server.js'

const SEC = 1000
const JWKS: CompiledJwksOptions = { refreshIntervalMs: 600 * SEC, cooldownMs: 30 * SEC, timeoutMs: 2 * SEC, maxStaleMs: 3600 * SEC, maxBytes: 65_536 }
const WORKERS = 3

function issuerAt (url: string, jwks: Partial<CompiledJwksOptions> = {}): CompiledIssuer {
  return compiledIssuer({ issuer: new URL(url).origin, keys: { kind: 'jwksUri', url }, algorithms: new Set(['ES256']), jwks: { ...JWKS, ...jwks } })
}

type Primary = 'answers' | 'ignores' | 'accepts only' | 'absent'

/** A worker's channel to `host` behaving as `primary` says; `sent` records what reached the primary. */
function channelTo (host: KeyFetchHost, primary: Primary, sent: ToPrimary[]): PrimaryChannel {
  let listener: (message: ToWorker) => void = () => {}
  return {
    send: (message) => {
      if (primary === 'absent') return false
      sent.push(message)
      if (primary === 'answers' && message.scopegate === 'fetch-keys') {
        setImmediate(() => { host.serve(message, (reply) => { setImmediate(() => { listener(reply) }) }) })
      } else if (primary === 'accepts only' && message.scopegate === 'fetch-keys') {
        setImmediate(() => { listener({ scopegate: 'fetch-accepted', id: message.id }) })
      }
      return true
    },
    listen: (next) => { listener = next }
  }
}

interface Group {
  jwks: JwksServer
  key: TestKey
  clock: { now: number }
  host: KeyFetchHost
  stores: KeyStore[]
  links: WorkerKeyFetch[]
  sent: ToPrimary[]
  fallbacks: string[]
}

async function group (t: Test, primary: Primary = 'answers', jwksOptions: Partial<CompiledJwksOptions> = {}, workers = WORKERS): Promise<Group> {
  const key = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  const clock = { now: 1_700_000_000_000 }
  const host = new KeyFetchHost({ now: () => clock.now })
  const sent: ToPrimary[] = []
  const fallbacks: string[] = []
  const issuer = issuerAt(jwks.url, jwksOptions)
  const links = Array.from({ length: workers }, () => new WorkerKeyFetch({
    channel: channelTo(host, primary, sent),
    // Short only where the primary is not meant to answer: a loaded machine may take longer than that to deliver.
    acceptWaitMs: primary === 'answers' ? undefined : 50,
    onFallback: (url, reason) => { fallbacks.push(`${url}: ${reason}`) }
  }))
  const stores = links.map((link) => new KeyStore(issuer, { fetch: link.fetchFor(issuer), now: () => clock.now }))
  return { jwks, key, clock, host, stores, links, sent, fallbacks }
}

t.test('three workers starting at once make one fetch, and each holds the keys', async (t) => {
  const g = await group(t)
  await Promise.all(g.stores.map((store) => store.refresh()))
  t.equal(g.jwks.fetches, 1, 'the issuer saw one fetch')
  t.equal(g.host.fetches, 1)
  t.equal(g.sent.filter((m) => m.scopegate === 'fetch-keys').length, WORKERS, 'every worker asked the primary')
  for (const [i, store] of g.stores.entries()) {
    t.equal(store.status().state, 'ready', `worker ${i + 1} ready`)
    t.equal((await store.getKeys(g.key.kid, 'ES256')).length, 1, `worker ${i + 1} has the key`)
  }
  t.same(g.fallbacks, [], 'no worker fetched itself')
  t.equal(g.links.reduce((n, link) => n + link.pending, 0), 0, 'nothing left waiting')
})

t.test('a rotation seen by every worker in turn makes one fetch', async (t) => {
  const g = await group(t)
  await Promise.all(g.stores.map((store) => store.refresh()))
  const next = await makeKey('ES256')
  g.jwks.setKeys([g.key, next])
  g.clock.now += JWKS.cooldownMs
  // One after the other, not at once: the later workers get the answer the first one's fetch brought.
  for (const [i, store] of g.stores.entries()) {
    g.clock.now += SEC
    t.equal((await store.getKeys(next.kid, 'ES256')).length, 1, `worker ${i + 1} knows the new kid`)
  }
  t.equal(g.jwks.fetches, 2, 'the start-up fetch and one for the rotation')
  t.same(g.fallbacks, [])
})

t.test('an answer older than the cooldown is not reused: the next ask fetches', async (t) => {
  const g = await group(t)
  await g.stores[0]?.refresh()
  g.clock.now += JWKS.cooldownMs
  await g.stores[1]?.refresh()
  t.equal(g.jwks.fetches, 2)
  g.clock.now += JWKS.cooldownMs - 1
  await g.stores[2]?.refresh()
  t.equal(g.jwks.fetches, 2, 'within the cooldown of the second fetch: shared')
  t.equal(g.host.held, 1, 'one answer held for one URL')
})

t.test('an outage: one fetch for the group, stale keys in use, unknown kids refused', async (t) => {
  const g = await group(t)
  await Promise.all(g.stores.map((store) => store.refresh()))
  g.jwks.setMode('down')
  g.clock.now += JWKS.cooldownMs
  const unknown = await Promise.all(g.stores.map((store) => denial(store.getKeys('rotated-away', 'ES256'))))
  t.equal(g.jwks.fetches, 2, 'the start-up fetch and one failed fetch for the three workers')
  for (const [i, err] of unknown.entries()) {
    t.equal(err.status, 401, `worker ${i + 1}: 401`)
    t.equal(err.code, 'invalid_token')
  }
  for (const [i, store] of g.stores.entries()) {
    const status = store.status()
    t.equal(status.state, 'stale', `worker ${i + 1} is stale`)
    t.match(status.lastError, /^status: answered HTTP 503/, 'the failure as the worker\'s own fetch would have put it')
    t.equal((await store.getKeys(g.key.kid, 'ES256')).length, 1, `worker ${i + 1} still verifies with the last good key`)
  }
  g.jwks.setMode('ok')
  g.clock.now += JWKS.cooldownMs
  for (const store of g.stores) store.probe()
  await Promise.all(g.stores.map((store) => store.refresh()))
  t.equal(g.jwks.fetches, 3, 'the recovery is one fetch too')
  t.same(g.stores.map((store) => store.status().state), ['ready', 'ready', 'ready'])
})

t.test('the byte limit and the not-JSON check hold through the primary', async (t) => {
  const g = await group(t, 'answers', { maxBytes: 64 })
  await g.stores[0]?.refresh()
  t.match(g.stores[0]?.status().lastError, /^too_large: /, 'the primary stops reading at maxBytes')
  g.jwks.setMode({ body: '<html>maintenance</html>', contentType: 'text/html' })
  g.clock.now += JWKS.cooldownMs
  await g.stores[1]?.refresh()
  t.match(g.stores[1]?.status().lastError, /^not_json: body is not JSON \(text\/html, 24 bytes, starts "<html>maintenance<\/html>"\)/,
    'the content type the issuer sent reaches the worker')
})

t.test('a primary that never takes the fetch on: each worker fetches itself after the bounded wait', async (t) => {
  const g = await group(t, 'ignores')
  await Promise.all(g.stores.map((store) => store.refresh()))
  t.equal(g.jwks.fetches, WORKERS, 'one fetch per worker, as without a primary')
  t.equal(g.host.fetches, 0)
  t.equal(g.fallbacks.length, WORKERS)
  t.match(g.fallbacks[0], `${g.jwks.url}: the cluster primary did not take the fetch on within 50 ms`)
  for (const store of g.stores) t.equal(store.status().state, 'ready')
  t.equal(g.links.reduce((n, link) => n + link.pending, 0), 0, 'nothing left waiting')
})

t.test('no primary to ask: the worker fetches at once', async (t) => {
  const g = await group(t, 'absent', {}, 1)
  await g.stores[0]?.refresh()
  t.equal(g.jwks.fetches, 1)
  t.same(g.sent, [])
  t.match(g.fallbacks, [/no cluster primary to ask$/])
  t.equal(g.stores[0]?.status().state, 'ready')
})

t.test('a primary that takes the fetch on and never answers: the fetch times out, it does not hang', async (t) => {
  const g = await group(t, 'accepts only', { timeoutMs: 200 }, 1)
  await g.stores[0]?.refresh()
  t.equal(g.jwks.fetches, 0, 'the issuer saw nothing')
  t.match(g.stores[0]?.status().lastError, /^timeout: no complete answer within 200 ms/)
  t.equal(g.stores[0]?.status().state, 'unavailable')
  t.same(g.fallbacks, [], 'accepted: no second fetch of its own')
  t.equal(g.links[0]?.pending, 0, 'nothing left waiting')
})

t.test('only plain GETs go to the primary: a POST (introspection, which carries a token) is sent by the worker', async (t) => {
  const direct: string[] = []
  const fetch: FetchLike = async (url, init) => {
    direct.push(`${init.method ?? 'GET'} ${url}`)
    return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } })
  }
  const sent: ToPrimary[] = []
  const link = new WorkerKeyFetch({ channel: channelTo(new KeyFetchHost(), 'answers', sent), fetch })
  const own = link.fetchFor(issuerAt('http://127.0.0.1:9/jwks'))
  const res = await own('http://127.0.0.1:9/introspect', { method: 'POST', body: 'token=secret' })
  t.equal(res.status, 200)
  t.same(direct, ['POST http://127.0.0.1:9/introspect'])
  t.same(sent, [], 'the primary saw nothing')
})

t.test('the primary\'s held answers are bounded by their reuse window', async (t) => {
  const g = await group(t, 'answers', {}, 1)
  await g.host.answer({ url: g.jwks.url, timeoutMs: 1000, maxBytes: 65_536, shareMs: 10 * SEC })
  await g.host.answer({ url: `${g.jwks.issuer}/other`, timeoutMs: 1000, maxBytes: 65_536, shareMs: 10 * SEC })
  t.equal(g.host.held, 2)
  g.clock.now += 10 * SEC
  const third = await g.host.answer({ url: `${g.jwks.issuer}/third`, timeoutMs: 1000, maxBytes: 65_536, shareMs: 10 * SEC })
  t.match(third, { ok: false, kind: 'status', message: 'answered HTTP 404' })
  t.equal(g.host.held, 1, 'the two expired answers were dropped')
})

t.test('an issuer with a smaller byte limit never gets an answer fetched under a larger one', async (t) => {
  const g = await group(t, 'answers', {}, 1)
  const large = await g.host.answer({ url: g.jwks.url, timeoutMs: 1000, maxBytes: 65_536, shareMs: 10 * SEC })
  t.match(large, { ok: true })
  const small = await g.host.answer({ url: g.jwks.url, timeoutMs: 1000, maxBytes: 16, shareMs: 10 * SEC })
  t.match(small, { ok: false, kind: 'too_large' })
  t.equal(g.jwks.fetches, 2, 'fetched again under the smaller limit')
})
