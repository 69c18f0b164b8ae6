/**
 * The claims and header of a re-issued token, from plain values: iss, aud, sub, client_id, the narrowed
 * scope, act (RFC 8693 §4.1), iat, exp ≤ min(original exp, now + ttl), jti; typ at+jwt and kid.
 */
import t from 'tap'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK } from 'jose'
import { reissueClaims, signReissuedToken } from '../../src/reissue/reissue-token.js'
import { generateSigningKeys } from '../../src/reissue/signing-keys.js'
import { ORIGINAL_ISS, reissueConfig, routeOf, verifiedToken } from './fixtures.js'

const config = reissueConfig()
const NOW = Date.UTC(2030, 0, 1) // ms
const NOW_S = NOW / 1000

t.test('every claim: iss, aud, sub, client_id, the narrowed scope, act, iat, exp and jti', async (t) => {
  const token = verifiedToken(config, { sub: 'alice', client_id: 'todo-web', scope: 'read:todos write:todos delete:todos', exp: NOW_S + 3600 })
  const claims = reissueClaims({
    issuer: 'https://scopegate.test', audience: routeOf(config, 'todos').forward.audience, token, scopes: ['read:todos', 'write:todos'], now: NOW, ttlMs: 60_000
  })
  t.match(claims, {
    iss: 'https://scopegate.test',
    aud: 'http://todo.internal:3000',
    sub: 'alice',
    client_id: 'todo-web',
    scope: 'read:todos write:todos',
    act: { iss: ORIGINAL_ISS, sub: 'alice' },
    iat: NOW_S,
    exp: NOW_S + 60
  })
  t.match(claims.jti, /^[0-9a-f-]{36}$/)
  t.notMatch(claims.scope, /delete:todos/, 'a narrowed-away scope is never carried')
  t.not(reissueClaims({ issuer: 'x', audience: 'y', token, scopes: [], now: NOW, ttlMs: 60_000 }).jti, claims.jti, 'jti is unique')
})

t.test('exp is the original exp when that comes first', async (t) => {
  const token = verifiedToken(config, { sub: 'alice', exp: NOW_S + 20 })
  t.equal(reissueClaims({ issuer: 'x', audience: 'y', token, scopes: [], now: NOW, ttlMs: 60_000 }).exp, NOW_S + 20)
})

t.test('exp never exceeds now + ttl, even with a fractional now', async (t) => {
  const token = verifiedToken(config, { sub: 'alice', exp: NOW_S + 3600 })
  const claims = reissueClaims({ issuer: 'x', audience: 'y', token, scopes: [], now: NOW + 999, ttlMs: 1500 })
  t.equal(claims.iat, NOW_S)
  t.equal(claims.exp, NOW_S + 2, 'floor((now + ttl) / 1000)')
  t.ok(claims.exp * 1000 <= NOW + 999 + 1500)
})

t.test('no subject, no client id, no scope left: the claims are left out, not sent empty', async (t) => {
  const token = verifiedToken(config, { exp: NOW_S + 60 })
  const claims = reissueClaims({ issuer: 'x', audience: 'y', token, scopes: [], now: NOW, ttlMs: 60_000 })
  t.notOk('sub' in claims)
  t.notOk('client_id' in claims)
  t.notOk('scope' in claims)
  t.same(claims.act, { iss: ORIGINAL_ISS })
})

t.test('the signed token has typ at+jwt and the signer\'s kid, and verifies against the published keys', async (t) => {
  const keys = await generateSigningKeys('ES256')
  const token = verifiedToken(config, { sub: 'alice', client_id: 'todo-web', scope: 'read:todos', exp: Math.floor(Date.now() / 1000) + 600 })
  const claims = reissueClaims({ issuer: 'https://scopegate.test', audience: 'https://reports.internal', token, scopes: ['read:todos'], now: Date.now(), ttlMs: 60_000 })
  const jwt = await signReissuedToken(claims, keys.signer)
  t.same(decodeProtectedHeader(jwt), { alg: 'ES256', kid: keys.signer.kid, typ: 'at+jwt' })
  const { payload } = await jwtVerify(jwt, createLocalJWKSet({ keys: keys.published as JWK[] }), {
    issuer: 'https://scopegate.test', audience: 'https://reports.internal', typ: 'at+jwt', algorithms: ['ES256']
  })
  t.same(payload, claims)
})
