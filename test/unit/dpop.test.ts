/**
 * The DPoP parts that need no network (docs/dpop.md): the RFC 7638 thumbprint agrees with jose's, server
 * nonces expire with their window, the memory replay store forgets nothing live and stays bounded, and
 * origins are compared in one canonical form. Time is injected: nothing sleeps.
 */
import { generateKeyPairSync } from 'node:crypto'
import t from 'tap'
import { calculateJwkThumbprint, type JWK } from 'jose'
import { forwardAuthOrigin } from '../../src/http/forward-auth-origin.js'
import { receivedOrigin, requestOrigin } from '../../src/request/request-origin.js'
import { DpopNonces } from '../../src/token/dpop-nonce.js'
import { MemoryReplayStore } from '../../src/token/dpop-replay.js'
import { jwkThumbprint } from '../../src/token/dpop-thumbprint.js'

t.test('the thumbprint is jose\'s, for every key type a proof may use, and ignores optional members', async (t) => {
  const keys = [
    generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    generateKeyPairSync('ec', { namedCurve: 'P-384' }),
    generateKeyPairSync('rsa', { modulusLength: 2048 }),
    generateKeyPairSync('ed25519')
  ]
  for (const { publicKey } of keys) {
    const jwk = publicKey.export({ format: 'jwk' }) as Record<string, unknown>
    const expected = await calculateJwkThumbprint(jwk as JWK)
    t.equal(jwkThumbprint(jwk), expected, `${String(jwk.kty)} ${String(jwk.crv ?? '')}`)
    t.equal(jwkThumbprint({ ...jwk, kid: 'k', alg: 'x', use: 'sig' }), expected, 'kid, alg and use do not change it')
  }
  t.equal(jwkThumbprint({ kty: 'oct', k: 'c2VjcmV0' }), null, 'a symmetric key has none')
  t.equal(jwkThumbprint({ kty: 'EC', crv: 'P-256', x: 1, y: 'y' }), null, 'a member that is not a string: none')
})

t.test('nonces: accepted in their window and the next, refused after, forged or foreign', async (t) => {
  let now = 1_000_000_000_000
  const nonces = new DpopNonces('a-nonce-secret-of-at-least-32-characters', 60_000, () => now)
  const nonce = nonces.current()
  t.ok(nonces.accepts(nonce), 'now')
  now += 60_000
  t.ok(nonces.accepts(nonce), 'one window later')
  now += 60_000
  t.notOk(nonces.accepts(nonce), 'two windows later: stale')
  const fresh = nonces.current()
  t.notOk(nonces.accepts(`${fresh.slice(0, -1)}${fresh.endsWith('A') ? 'B' : 'A'}`), 'a changed MAC')
  t.notOk(new DpopNonces('another-secret-of-at-least-32-characters', 60_000, () => now).accepts(fresh), 'another secret')
  t.ok(new DpopNonces('a-nonce-secret-of-at-least-32-characters', 60_000, () => now).accepts(fresh), 'another process with the same secret')
  const [window] = fresh.split('.')
  const future = `${(Number.parseInt(window as string, 36) + 1).toString(36)}.${fresh.split('.')[1] as string}`
  t.notOk(nonces.accepts(future), 'a window in the future')
  for (const junk of [undefined, 42, '', '.', 'x.y', 'a'.repeat(100)]) t.notOk(nonces.accepts(junk), `junk ${JSON.stringify(junk)}`)
})

t.test('the memory replay store: a jti once per key while live, again after, and bounded', async (t) => {
  let now = 0
  const store = new MemoryReplayStore(3, () => now)
  t.equal(store.claim('key-a', 'j1', 1000), 'fresh')
  t.equal(store.claim('key-a', 'j1', 1000), 'replayed', 'the same jti again')
  t.equal(store.claim('key-b', 'j1', 1000), 'fresh', 'the same jti under another key is another proof')
  t.equal(store.claim('key-a', 'j2', 1000), 'fresh')
  t.equal(store.claim('key-a', 'j3', 1000), 'unavailable', 'full of live entries: refused, nothing forgotten')
  t.equal(store.claim('key-a', 'j1', 1000), 'replayed', 'and the live ones still count')
  now = 1001
  t.equal(store.claim('key-a', 'j3', 2000), 'fresh', 'once they expire, room again')
  t.equal(store.size, 1, 'the expired entries were swept')
  t.equal(store.claim('key-a', 'j1', 2000), 'fresh', 'an expired jti is no replay: its proof is stale anyway')
})

t.test('origins: one canonical form, and nothing that is not a plain origin', async (t) => {
  t.equal(requestOrigin('HTTP://API.Example.com:80'), 'http://api.example.com')
  t.equal(requestOrigin('https://api.example.com:443'), 'https://api.example.com')
  t.equal(requestOrigin('https://api.example.com:8443'), 'https://api.example.com:8443')
  t.equal(requestOrigin('http://[::1]:8080'), 'http://[::1]:8080')
  for (const bad of ['ftp://x', 'http://user@x', 'http://x/path', 'http://x?q', 'http://x#f', 'not a url', 'http://']) {
    t.equal(requestOrigin(bad), null, bad)
  }
  t.equal(receivedOrigin('api.example.com', false, undefined), 'http://api.example.com', 'plain socket')
  t.equal(receivedOrigin('api.example.com', true, undefined), 'https://api.example.com', 'TLS')
  t.equal(receivedOrigin('api.example.com', false, 'https, http'), 'https://api.example.com', 'X-Forwarded-Proto: the first hop')
  t.equal(receivedOrigin('api.example.com', false, 'gopher'), null, 'an unknown scheme')
  t.equal(receivedOrigin(undefined, false, undefined), null, 'no Host')
  t.equal(receivedOrigin('evil.com/x', false, undefined), null, 'a Host that is not a host')
})

t.test('forward auth: the origin the ingress names, from a trusted peer only, never from doubled headers', async (t) => {
  const raw = (...pairs: string[]): string[] => pairs
  t.equal(forwardAuthOrigin(raw('X-Original-URL', 'https://api.example.com/todos?x=1'), true), 'https://api.example.com')
  t.equal(forwardAuthOrigin(raw('X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'api.example.com', 'Host', 'scopegate:9090'), true), 'https://api.example.com')
  t.equal(forwardAuthOrigin(raw('X-Forwarded-Proto', 'https', 'Host', 'api.example.com'), true), 'https://api.example.com', 'Envoy: the call keeps the Host')
  t.equal(forwardAuthOrigin(raw('X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'api.example.com'), false), null, 'an untrusted peer')
  t.equal(forwardAuthOrigin(raw('X-Forwarded-Proto', 'https', 'X-Forwarded-Proto', 'http', 'Host', 'a'), true), null, 'two schemes')
  t.equal(forwardAuthOrigin(raw('X-Original-URL', 'https://a/x', 'X-Original-URL', 'https://b/x'), true), null, 'two URLs')
  t.equal(forwardAuthOrigin(raw('Host', 'api.example.com'), true), null, 'no scheme')
})
