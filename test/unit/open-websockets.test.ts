/**
 * Which open WebSockets the gateway closes, with time injected: a token past its `exp` (plus clock
 * tolerance) at once, one far in the future not yet (beyond setTimeout's range too), none when the route
 * says `closeOnExpiry: false` or is in audit mode; on reload, those the new config denies, unless the
 * route says `closeOnReload: false`.
 */
import { Duplex } from 'node:stream'
import t, { type Test } from 'tap'
import type { CompiledConfig, CompiledRoute } from '../../src/config/types.js'
import type { Allow, DecisionInput } from '../../src/decision/decide.js'
import { buildEngine } from '../../src/decision/engine.js'
import { OpenWebSockets } from '../../src/http/open-websockets.js'
import { WebSocketTunnel } from '../../src/http/websocket-tunnel.js'
import type { KeyEntry } from '../../src/keys/import-jwk.js'
import { createLogger } from '../../src/observability/logger.js'
import { identityClaims } from '../../src/token/claims.js'
import { verifiedToken, type VerifiedToken } from '../../src/token/verify-token.js'
import { compileTestConfig } from '../helpers/gateway.js'

const NOW = 1_800_000_000_000

function configWith (routes: Array<Record<string, unknown>>): CompiledConfig {
  return compileTestConfig({
    issuers: [{ id: 'idp', issuer: 'https://idp.test/', jwksUri: 'https://idp.test/jwks', algorithms: ['ES256'], audiences: ['api'], clockTolerance: '5s' }],
    upstreams: { chat: { url: 'http://chat.internal:3000' } },
    routes
  })
}

const chat = { id: 'chat', match: { path: '/chat', prefix: true }, upstream: 'chat', auth: 'none', websocket: { enabled: true } }
const config = configWith([
  chat,
  { ...chat, id: 'keep', match: { path: '/keep', prefix: true }, websocket: { enabled: true, closeOnExpiry: false, closeOnReload: false } },
  { ...chat, id: 'audit', match: { path: '/audit', prefix: true }, mode: 'audit' }
])

function route (id: string): CompiledRoute {
  const found = config.routes.find((r) => r.id === id)
  if (found === undefined) throw new Error(`no route ${id}`)
  return found
}

function token (expiresAt: number): VerifiedToken {
  const issuer = config.issuersById.get('idp')
  if (issuer === undefined) throw new Error('no issuer')
  const key = { kid: 'k', key: undefined, algorithms: new Set(['ES256']) } as unknown as KeyEntry
  return verifiedToken(identityClaims({ sub: 'alice' }, issuer.claims), issuer, {}, expiresAt, key, 0, `digest-${expiresAt}`)
}

function allow (routeId: string, expiresAt: number): Allow {
  const r = route(routeId)
  return { allowed: true, route: r, path: `${r.path}/room`, query: '', token: token(expiresAt), scopes: [], headers: {}, audit: null }
}

class NullSocket extends Duplex {
  override _read (): void {}
  override _write (_chunk: Buffer, _encoding: BufferEncoding, done: () => void): void { done() }
}

function tunnel (t: Test): WebSocketTunnel {
  const client = new NullSocket()
  const upstream = new NullSocket()
  t.teardown(() => { client.destroy(); upstream.destroy() })
  return new WebSocketTunnel(client, upstream, Buffer.alloc(0), Buffer.alloc(0))
}

const input = (path: string): DecisionInput => ({ method: 'GET', target: path, authorization: [], clientIp: '127.0.0.1' })
const open = (): OpenWebSockets => new OpenWebSockets({ logger: createLogger({ level: 'silent' }), now: () => NOW })

t.test('expiry, judged by the injected clock with the issuer\'s clock tolerance', async (t) => {
  const cases: Array<[name: string, routeId: string, expiresAt: number, closing: boolean]> = [
    ['past exp + tolerance: closed at once', 'chat', NOW / 1000 - 6, true],
    ['past exp, within tolerance: still open', 'chat', NOW / 1000 - 4, false],
    ['exp in an hour: open', 'chat', NOW / 1000 + 3600, false],
    ['exp beyond setTimeout\'s range: open', 'chat', NOW / 1000 + 60 * 86400, false],
    ['closeOnExpiry false: never closed for expiry', 'keep', NOW / 1000 - 60, false],
    ['audit mode: never closed for expiry', 'audit', NOW / 1000 - 60, false]
  ]
  for (const [name, routeId, expiresAt, closing] of cases) {
    const sockets = open()
    const opened = tunnel(t)
    sockets.add(opened, allow(routeId, expiresAt), input(`/${routeId}/room`))
    t.equal(opened.closing, closing, name)
    t.equal(sockets.size, 1, 'watched until its sockets close')
  }
})

t.test('reload: closed when the new config denies it, kept when it allows it or the route opts out', async (t) => {
  const sockets = open()
  const onChat = tunnel(t)
  const onKeep = tunnel(t)
  sockets.add(onChat, allow('chat', NOW / 1000 + 3600), input('/chat/room'))
  sockets.add(onKeep, allow('keep', NOW / 1000 + 3600), input('/keep/room'))

  sockets.recheck(buildEngine(config, null, { now: () => NOW }))
  t.equal(onChat.closing, false, 'the same config still allows it')

  sockets.recheck(buildEngine(configWith([{ ...chat, websocket: { enabled: false } }, { ...chat, id: 'keep', match: { path: '/keep' } }]), null, { now: () => NOW }))
  t.equal(onChat.closing, true, 'its route no longer accepts WebSockets')
  t.equal(onKeep.closing, false, 'closeOnReload false: left open although its path has no route now')
})

t.test('shutdown closes every open WebSocket, and any opened after it began', async (t) => {
  const sockets = open()
  const first = tunnel(t)
  sockets.add(first, allow('keep', NOW / 1000 + 3600), input('/keep/room'))
  const closing = sockets.closeAll(Date.now() + 50)
  t.equal(first.closing, true)
  const late = tunnel(t)
  sockets.add(late, allow('chat', NOW / 1000 + 3600), input('/chat/room'))
  t.equal(late.closing, true)
  await closing
})
