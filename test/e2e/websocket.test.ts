/**
 * WebSockets through the proxy listener (docs/proxying.md, "WebSockets and Upgrade"), with the `ws`
 * package on both ends: a handshake is decided like any request and denied with the usual JSON answer
 * (never a 101, nothing upstream); an allowed one reaches the route's upstream at the normalized path
 * with scopegate's identity headers, and frames flow both ways until either side closes. The gateway
 * closes a WebSocket itself (1008) when its token expires or a reload denies it.
 */
import http from 'node:http'
import net from 'node:net'
import t, { type Test } from 'tap'
import type { WebSocket } from 'ws'
import { closeServer, closedPort, listenLocal, startEcho, trackSockets } from '../helpers/echo-upstream.js'
import { compileTestConfig, startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { makeKey, mintToken, startJwksServer } from '../helpers/jwks-server.js'
import { closed, nextMessage, openWs, startWsUpstream, type Opened, type WsUpstream } from '../helpers/ws-upstream.js'

const API = 'https://chat.api'
const TOKEN_PROTOCOL = 'base64url.bearer.authorization.k8s.io.'

/** Rejects when `promise` has not settled within `ms` milliseconds, so a broken gateway fails a test instead of hanging it. */
function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: not within ${ms} ms`)) }, ms) })
  return Promise.race([promise, timeout]).finally(() => { clearTimeout(timer) })
}

function opened (t: Test, result: Opened): WebSocket {
  if (!result.open) {
    t.fail(`the handshake was refused: ${result.status} ${result.body}`)
    throw new Error('not open')
  }
  t.teardown(() => { result.socket.terminate() })
  return result.socket
}

function refused (t: Test, result: Opened): Extract<Opened, { open: false }> {
  if (result.open) {
    result.socket.terminate()
    t.fail('the handshake was answered 101')
    throw new Error('open')
  }
  return result
}

t.test('WebSockets on the proxy listener', async (t) => {
  const key = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  const upstream: WsUpstream = await startWsUpstream()
  t.teardown(() => upstream.close())
  const refusing = await startWsUpstream()
  refusing.refuseWith = 403
  t.teardown(() => refusing.close())

  const echo = await startEcho()
  t.teardown(() => echo.close())
  const down = await closedPort()
  // An upstream that takes the handshake and never answers it.
  const hanging = http.createServer()
  let hangingHandshakes = 0
  hanging.on('upgrade', () => { hangingHandshakes++ })
  const hangingSockets = trackSockets(hanging)
  const hangingPort = await listenLocal(hanging)
  t.teardown(() => closeServer(hanging, hangingSockets))
  const routes = (chatScope: string): Array<Record<string, unknown>> => [
    {
      id: 'chat',
      match: { path: '/chat', prefix: true },
      upstream: 'chat',
      stripPrefix: true,
      policy: { scopes: { require: [chatScope] } },
      websocket: { enabled: true }
    },
    {
      id: 'browser',
      match: { path: '/browser', prefix: true },
      upstream: 'chat',
      forward: { authorization: 'strip' },
      websocket: { enabled: true, subprotocolToken: true }
    },
    { id: 'plain', match: { path: '/plain', prefix: true }, upstream: 'echo' },
    { id: 'refusing', match: { path: '/refusing', prefix: true }, upstream: 'refusing', websocket: { enabled: true } },
    { id: 'down', match: { path: '/down', prefix: true }, upstream: 'down', websocket: { enabled: true } },
    { id: 'hanging', match: { path: '/hanging', prefix: true }, upstream: 'hanging', websocket: { enabled: true } }
  ]
  const config = (chatScope: string): Record<string, unknown> => ({
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API], clockTolerance: '0s' }],
    upstreams: {
      chat: { url: `${upstream.url}/base` },
      refusing: { url: refusing.url },
      echo: { url: echo.url },
      down: { url: down },
      hanging: { url: `http://127.0.0.1:${hangingPort}`, timeout: '300ms' }
    },
    routes: routes(chatScope)
  })
  const gw = await startGateway(config('chat'))
  t.teardown(() => gw.close())
  const ws = gw.proxyUrl.replace(/^http/, 'ws')

  const claims = { iss: jwks.issuer, aud: API, sub: 'alice', client_id: 'chat-app', scope: 'chat' }
  const token = await mintToken(key, claims)
  const noScope = await mintToken(key, { ...claims, scope: 'read' })
  const auth = (value: string): Record<string, string> => ({ authorization: `Bearer ${value}` })

  const denials: Array<[name: string, path: string, headers: Record<string, string>, status: number, error: string]> = [
    ['no token', '/chat/room', {}, 401, 'unauthorized'],
    ['a token lacking the scope', '/chat/room', auth(noScope), 403, 'insufficient_scope'],
    ['no route', '/nowhere', auth(token), 404, 'no_route'],
    ['a route that does not accept upgrades', '/plain/room', auth(token), 400, 'invalid_request'],
    ['a token in the query string', `/chat/room?access_token=${token}`, {}, 401, 'unauthorized'],
    ['an encoded slash in the path', '/chat/a%2fb', auth(token), 400, 'invalid_request'],
    ['a malformed Authorization header', '/chat/room', { authorization: 'Bearer a b' }, 400, 'invalid_request']
  ]
  for (const [name, path, headers, status, error] of denials) {
    t.test(`denied: ${name} is ${status} ${error}, never a 101, and the upstream sees nothing`, async (t) => {
      const before = upstream.handshakes.length
      const plainBefore = echo.received.length
      const answer = refused(t, await within(openWs(ws + path, { headers }), 10_000, 'handshake'))
      t.equal(answer.status, status)
      t.equal(answer.json?.error, error)
      t.type(answer.json?.error_description, 'string')
      t.match(answer.headers['content-type'], /^application\/json/)
      t.equal(answer.headers['cache-control'], 'no-store')
      if (status === 401 || status === 403) t.match(answer.headers['www-authenticate'], /^Bearer realm="scopegate"/)
      t.equal(upstream.handshakes.length, before, 'the upstream received no handshake')
      t.equal(echo.received.length, plainBefore, 'nor any request')
    })
  }

  t.test('a denial is a decision line like any request, without the token', async (t) => {
    const lines = gw.decisions().filter((l) => l.route === 'chat' && l.decision === 'deny')
    t.ok(lines.some((l) => l.status === 403 && l.reason === 'scope_insufficient'))
    t.ok(gw.decisions().some((l) => l.route === 'plain' && l.status === 400 && l.reason === 'upgrade_not_allowed'))
    t.notOk(gw.rawLog().includes(token), 'the token is never logged')
  })

  t.test('allowed: the upstream gets the handshake at the normalized path with scopegate\'s identity', async (t) => {
    const before = upstream.handshakes.length
    const socket = opened(t, await within(openWs(`${ws}/chat/%61b/..;/room//x?x=1&y=2`, {
      headers: { ...auth(token), 'x-auth-subject': 'mallory', 'X-Auth-Scopes': 'admin', connection: 'Upgrade, x-auth-route' }
    }), 10_000, 'handshake'))
    t.equal(upstream.handshakes.length, before + 1)
    const seen = upstream.handshakes.at(-1)
    t.equal(seen?.url, '/base/room/x?x=1&y=2', 'path normalized (escapes, `..;`, `//`), prefix stripped, base path added, query untouched')
    t.equal(seen?.headers['x-auth-subject'], 'alice', 'the forged copy is replaced')
    t.equal(seen?.headers['x-auth-scopes'], 'chat')
    t.equal(seen?.headers['x-auth-route'], 'chat')
    t.equal(seen?.headers['x-auth-client-id'], 'chat-app')
    t.equal(seen?.rawHeaders.filter((h) => h.toLowerCase() === 'x-auth-subject').length, 1, 'one x-auth-subject only')
    t.equal(seen?.headers.upgrade, 'websocket')
    t.match(seen?.headers.connection, /upgrade/i)
    t.type(seen?.headers['sec-websocket-key'], 'string')
    t.equal(seen?.headers.authorization, `Bearer ${token}`, 'forward.authorization keep')
    t.ok(gw.decisions().some((l) => l.route === 'chat' && l.decision === 'allow' && l.status === 101 && l.sub === 'alice'))

    t.test('text and binary messages are echoed both ways', async (t) => {
      socket.send('hello')
      const text = await within(nextMessage(socket), 10_000, 'text echo')
      t.equal(text.isBinary, false)
      t.equal(text.data.toString('utf8'), 'hello')
      const bytes = Buffer.from([0, 1, 2, 255, 254])
      socket.send(bytes)
      const binary = await within(nextMessage(socket), 10_000, 'binary echo')
      t.equal(binary.isBinary, true)
      t.same([...binary.data], [...bytes])
    })

    t.test('a message of several MB arrives whole, both ways (backpressure)', async (t) => {
      const big = Buffer.alloc(6 * 1024 * 1024)
      for (let i = 0; i < big.length; i += 4096) big[i] = i % 251
      socket.send(big)
      const echoed = await within(nextMessage(socket), 30_000, 'large echo')
      t.equal(echoed.data.length, big.length)
      t.ok(echoed.data.equals(big), 'byte for byte')
    })

    t.test('the client closing closes the upstream side with the client\'s code', async (t) => {
      const upstreamClosed = upstream.nextClose()
      socket.close(4002, 'client done')
      const seenUp = await within(upstreamClosed, 10_000, 'upstream close')
      t.equal(seenUp.code, 4002)
      t.equal(seenUp.reason, 'client done')
      t.equal((await within(closed(socket), 10_000, 'client close')).code, 4002)
    })
  })

  t.test('the upstream closing closes the client with the upstream\'s code', async (t) => {
    const socket = opened(t, await within(openWs(`${ws}/chat/room`, { headers: auth(token) }), 10_000, 'handshake'))
    const clientClosed = closed(socket)
    upstream.sockets.at(-1)?.close(4001, 'upstream done')
    const seen = await within(clientClosed, 10_000, 'client close')
    t.equal(seen.code, 4001)
    t.equal(seen.reason, 'upstream done')
  })

  t.test('an upstream that refuses the handshake: its answer is relayed', async (t) => {
    const answer = refused(t, await within(openWs(`${ws}/refusing/x`, { headers: auth(token) }), 10_000, 'handshake'))
    t.equal(answer.status, 403)
    t.equal(refusing.handshakes.length, 1, 'the upstream was asked')
    t.equal(answer.headers['www-authenticate'], undefined, 'the upstream\'s answer, not a scopegate denial')
    t.equal(answer.body, 'refused by the upstream', 'with its body')
  })

  t.test('an upstream that does not answer the handshake in time is 504 gateway_timeout', async (t) => {
    const answer = refused(t, await within(openWs(`${ws}/hanging/x`, { headers: auth(token) }), 10_000, 'handshake'))
    t.equal(answer.status, 504)
    t.equal(answer.json?.error, 'gateway_timeout')
    t.equal(hangingHandshakes, 1, 'the upstream was asked')
  })

  t.test('an upgrade to another protocol (h2c) is served as plain HTTP, the upgrade ignored', async (t) => {
    const h2c = { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAAQAoAAAAAIAAAAA' }
    const before = echo.received.length
    const res = await send(gw.proxyUrl, '/plain/x?q=1', { headers: { ...auth(token), ...h2c, 'x-auth-subject': 'mallory' } })
    t.equal(res.status, 200)
    t.equal(echo.received.length, before + 1)
    const seen = echo.received.at(-1)
    t.equal(seen?.url, '/plain/x?q=1')
    t.equal(seen?.headers.upgrade, undefined, 'Upgrade is hop-by-hop')
    t.equal(seen?.headers['http2-settings'], undefined, 'and so is what Connection names')
    t.equal(seen?.headers['x-auth-subject'], 'alice')

    const denied = await send(gw.proxyUrl, '/plain/x', { headers: h2c })
    t.equal(denied.status, 401, 'decided like any request')
    t.equal(denied.json?.error, 'unauthorized')

    const withBody = await send(gw.proxyUrl, '/plain/x', { method: 'POST', headers: { ...auth(token), ...h2c }, body: 'hello' })
    t.equal(withBody.status, 400, 'with a body, which an upgrade request leaves unread: refused')
    t.equal(withBody.json?.error, 'invalid_request')
    t.equal(echo.received.length, before + 1, 'the upstream saw neither')
  })

  t.test('hostile sockets: no Host, two Hosts, a Host the target contradicts, or a client that resets mid-handshake, never reach the upstream or break the gateway', async (t) => {
    const { port } = new URL(gw.proxyUrl)
    const raw = (request: string, reset: boolean): Promise<string> => new Promise((resolve) => {
      const socket = net.connect(Number(port), '127.0.0.1')
      const chunks: Buffer[] = []
      socket.on('data', (chunk: Buffer) => chunks.push(chunk))
      socket.on('error', () => {})
      socket.on('close', () => { resolve(Buffer.concat(chunks).toString('latin1')) })
      socket.setTimeout(10_000, () => { socket.destroy() })
      socket.write(request, () => { if (reset) socket.resetAndDestroy() })
    })
    const handshake = 'GET /chat/room HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer ${token}\r\n`
    const before = upstream.handshakes.length
    const noHost = await within(raw(`${handshake}\r\n`, false), 10_000, 'no Host')
    t.match(noHost, /^HTTP\/1\.1 400 /, 'no Host: 400')
    t.match(noHost, /"error":"invalid_request"/)
    t.equal(upstream.handshakes.length, before)
    // The same Host rules as every request (docs/proxying.md, "Request shapes refused").
    const twoHosts = await within(raw(`${handshake}Host: a.example\r\nHost: b.example\r\n\r\n`, false), 10_000, 'two Hosts')
    t.match(twoHosts, /^HTTP\/1\.1 400 /, 'two Host headers: 400')
    t.match(twoHosts, /"error":"invalid_request"/)
    const absolute = handshake.replace('GET /chat/room ', 'GET http://elsewhere.example/chat/room ')
    const contradicted = await within(raw(`${absolute}Host: gw.example\r\n\r\n`, false), 10_000, 'host mismatch')
    t.match(contradicted, /^HTTP\/1\.1 400 /, 'an absolute-form target another host than Host: 400')
    t.notMatch(contradicted, /101 Switching/)
    t.equal(upstream.handshakes.length, before, 'none of them reached the upstream')
    for (let i = 0; i < 5; i++) await within(raw(`${handshake}Host: x\r\n\r\n`, true), 10_000, 'reset')
    const socket = opened(t, await within(openWs(`${ws}/browser/feed`, { headers: auth(token) }), 10_000, 'handshake after resets'))
    socket.send('alive')
    t.equal((await within(nextMessage(socket), 10_000, 'echo')).data.toString('utf8'), 'alive')
    socket.close()
  })

  t.test('handshakes are counted in the metrics like any request', async (t) => {
    const metrics = await send(gw.adminUrl, '/metrics')
    t.match(metrics.body, /route="chat",decision="allow",reason="allowed"/)
    t.match(metrics.body, /route="plain",decision="deny",reason="upgrade_not_allowed"/)
  })

  t.test('an upstream that cannot be reached is 502 bad_gateway', async (t) => {
    const answer = refused(t, await within(openWs(`${ws}/down/x`, { headers: auth(token) }), 10_000, 'handshake'))
    t.equal(answer.status, 502)
    t.equal(answer.json?.error, 'bad_gateway')
    t.ok(gw.decisions().some((l) => l.route === 'down' && l.status === 502 && l.reason === 'upstream_refused'))
  })

  t.test('the token in Sec-WebSocket-Protocol, for browsers', async (t) => {
    const entry = TOKEN_PROTOCOL + Buffer.from(token).toString('base64url')

    t.test('is accepted on a route that opts in, removed before the upstream, and the others negotiated', async (t) => {
      const before = upstream.handshakes.length
      const result = await within(openWs(`${ws}/browser/feed`, { protocols: [entry, 'chat.v1', 'chat.v2'] }), 10_000, 'handshake')
      const socket = opened(t, result)
      t.equal(result.open && result.protocol, 'chat.v1', 'the upstream chose among the other subprotocols')
      const seen = upstream.handshakes[before]
      t.equal(seen?.headers['sec-websocket-protocol'], 'chat.v1, chat.v2')
      t.equal(seen?.headers.authorization, undefined, 'forward.authorization strip')
      t.equal(seen?.headers['x-auth-subject'], 'alice')
      t.notOk(JSON.stringify(seen?.rawHeaders).includes(token.slice(-20)), 'the token is nowhere in what the upstream received')
      socket.send('via subprotocol')
      t.equal((await within(nextMessage(socket), 10_000, 'echo')).data.toString('utf8'), 'via subprotocol')
      t.notOk(gw.rawLog().includes(Buffer.from(token).toString('base64url')), 'the encoded token is never logged')
    })

    t.test('with an Authorization header carrying another token, is 400 invalid_request', async (t) => {
      const before = upstream.handshakes.length
      const answer = refused(t, await within(openWs(`${ws}/browser/feed`, { protocols: [entry, 'chat.v1'], headers: auth(noScope) }), 10_000, 'handshake'))
      t.equal(answer.status, 400)
      t.equal(answer.json?.error, 'invalid_request')
      t.equal(upstream.handshakes.length, before)
    })

    t.test('with the same token in the Authorization header, is accepted', async (t) => {
      opened(t, await within(openWs(`${ws}/browser/feed`, { protocols: [entry, 'chat.v1'], headers: auth(token) }), 10_000, 'handshake'))
    })

    t.test('on a route that does not opt in, is 400 invalid_request', async (t) => {
      const before = upstream.handshakes.length
      const answer = refused(t, await within(openWs(`${ws}/chat/room`, { protocols: [entry, 'chat.v1'] }), 10_000, 'handshake'))
      t.equal(answer.status, 400)
      t.equal(answer.json?.error, 'invalid_request')
      t.equal(upstream.handshakes.length, before)
    })

    t.test('that is not base64url of a token, is 400 invalid_request', async (t) => {
      const answer = refused(t, await within(openWs(`${ws}/browser/feed`, { protocols: [`${TOKEN_PROTOCOL}not*base64`] }), 10_000, 'handshake'))
      t.equal(answer.status, 400)
      t.equal(answer.json?.error, 'invalid_request')
    })
  })

  t.test('a token that expires while the WebSocket is open: closed 1008 on both sides within a second of exp', async (t) => {
    const short = await mintToken(key, claims, { expiresIn: 2 })
    const exp = (JSON.parse(Buffer.from(short.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp: number }).exp * 1000
    const socket = opened(t, await within(openWs(`${ws}/chat/room`, { headers: auth(short) }), 10_000, 'handshake'))
    const upstreamClosed = upstream.nextClose()
    const seen = await within(closed(socket), 10_000, 'close at exp')
    t.equal(seen.code, 1008, 'policy violation')
    t.equal(seen.reason, 'token expired')
    t.ok(seen.at >= exp - 50, 'not before exp')
    t.ok(seen.at <= exp + 1000, 'within a second of exp')
    t.equal((await within(upstreamClosed, 10_000, 'upstream close')).code, 1008, 'the upstream side is closed too')
  })

  t.test('a reload: WebSockets the new config still allows stay open, the others are closed 1008', async (t) => {
    const kept = opened(t, await within(openWs(`${ws}/browser/feed`, { headers: auth(token) }), 10_000, 'handshake'))
    const revoked = opened(t, await within(openWs(`${ws}/chat/room`, { headers: auth(token) }), 10_000, 'handshake'))
    const revokedClosed = closed(revoked)
    t.ok(await gw.gateway.reload(compileTestConfig(config('chat:admin'))), 'reloaded')
    const seen = await within(revokedClosed, 10_000, 'close after reload')
    t.equal(seen.code, 1008)
    t.equal(seen.reason, 'authorization revoked')
    kept.send('still here')
    t.equal((await within(nextMessage(kept), 10_000, 'echo after reload')).data.toString('utf8'), 'still here')
  })

  t.test('shutdown closes open WebSockets with 1001, on both sides', async (t) => {
    const socket = opened(t, await within(openWs(`${ws}/browser/feed`, { headers: auth(token) }), 10_000, 'handshake'))
    const upstreamClosed = upstream.nextClose()
    const clientClosed = closed(socket)
    await within(gw.close(), 10_000, 'gateway close')
    t.equal((await within(clientClosed, 10_000, 'client close')).code, 1001)
    t.equal((await within(upstreamClosed, 10_000, 'upstream close')).code, 1001)
  })
})
