/**
 * Request shapes the RFCs reject, sent over raw sockets (docs/proxying.md): two Host headers, a Host that
 * disagrees with an absolute-form target, a bearer token in the header and again in the query or the form
 * body. Each is a 400 `invalid_request`, and the upstream sees nothing. The shapes that stay allowed
 * (absolute-form naming the same host, a form without a token) reach the upstream intact.
 */
import { createHash } from 'node:crypto'
import t from 'tap'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { mintToken } from '../helpers/jwks-server.js'
import { rawExchange } from './raw-socket.js'

const API = 'https://shapes.api'

t.test('request shapes refused and allowed', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { echo: { url: echo.url } },
    routes: [
      { id: 'api', match: { path: '/api', prefix: true }, upstream: 'echo' },
      { id: 'audited', match: { path: '/audited', prefix: true }, upstream: 'echo', mode: 'audit' }
    ]
  })
  t.teardown(() => gw.close())
  const token = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice' })
  const auth = `Authorization: Bearer ${token}\r\n`

  /** One raw request: its answer, and what the upstream received meanwhile. */
  const exchange = async (request: string): Promise<{ status: number, json: any, text: string, upstream: typeof echo.received }> => {
    const before = echo.received.length
    const answer = await rawExchange(gw.proxyUrl, request)
    return { ...answer, upstream: echo.received.slice(before) }
  }

  t.test('refused with 400 invalid_request, nothing upstream', async (t) => {
    const longForm = 'a=' + 'x'.repeat(100 * 1024) + '&access_token=second'
    const cases: Array<[name: string, request: string, reason: string]> = [
      ['two Host headers', `GET /api/x HTTP/1.1\r\nHost: gw.example\r\nHost: other.example\r\n${auth}\r\n`, 'host_duplicated'],
      ['two Host headers, same value, other case', `GET /api/x HTTP/1.1\r\nHost: gw.example\r\nhost: gw.example\r\n${auth}\r\n`, 'host_duplicated'],
      ['no Host on HTTP/1.1', `GET /api/x HTTP/1.1\r\n${auth}\r\n`, 'request_malformed'],
      ['absolute-form naming another host', `GET http://other.example/api/x HTTP/1.1\r\nHost: gw.example\r\n${auth}\r\n`, 'host_mismatch'],
      ['absolute-form with another port', `GET http://gw.example:8080/api/x HTTP/1.1\r\nHost: gw.example\r\n${auth}\r\n`, 'host_mismatch'],
      ['absolute-form with user information', `GET http://user@gw.example/api/x HTTP/1.1\r\nHost: gw.example\r\n${auth}\r\n`, 'host_mismatch'],
      ['a bearer header and access_token in the query', `GET /api/x?access_token=second HTTP/1.1\r\nHost: gw\r\n${auth}\r\n`, 'token_duplicated'],
      ['… percent-encoded', `GET /api/x?a=1&access%5Ftoken=second HTTP/1.1\r\nHost: gw\r\n${auth}\r\n`, 'token_duplicated'],
      ['… empty', `GET /api/x?access_token HTTP/1.1\r\nHost: gw\r\n${auth}\r\n`, 'token_duplicated'],
      ['a bearer header and access_token in a form body',
        `POST /api/x HTTP/1.1\r\nHost: gw\r\n${auth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 25\r\n\r\nname=alice&access_token=x`, 'token_duplicated'],
      ['… with a charset, the token first, chunked',
        `POST /api/x HTTP/1.1\r\nHost: gw\r\n${auth}Content-Type: Application/X-WWW-Form-Urlencoded; charset=UTF-8\r\nTransfer-Encoding: chunked\r\n\r\n8\r\naccess_t\r\n9\r\noken=x&y=\r\n0\r\n\r\n`, 'token_duplicated']
    ]
    for (const [name, request, reason] of cases) {
      await t.test(name, async (t) => {
        const res = await exchange(request)
        t.equal(res.status, 400)
        t.equal(res.json?.error, 'invalid_request')
        t.notMatch(res.text, token, 'the token is not echoed')
        t.same(res.upstream, [], 'the upstream saw nothing')
        t.match(gw.decisions().at(-1), { decision: 'deny', reason, status: 400 })
      })
    }

    await t.test('a long form body with a token past the held bound: 400, the upstream request never completes', async (t) => {
      const res = await exchange(`POST /api/x HTTP/1.1\r\nHost: gw\r\n${auth}Content-Type: application/x-www-form-urlencoded\r\n` +
        `Content-Length: ${longForm.length}\r\n\r\n${longForm}`)
      t.equal(res.status, 400)
      t.equal(res.json?.error, 'invalid_request')
      t.same(res.upstream, [], 'the upstream got an aborted request, never a whole one')
      t.match(gw.decisions().at(-1), { decision: 'deny', reason: 'token_duplicated', status: 400 })
    })
  })

  t.test('a token in the query without a header is no credentials: 401, nothing upstream', async (t) => {
    const res = await exchange(`GET /api/x?access_token=${token} HTTP/1.1\r\nHost: gw\r\n\r\n`)
    t.equal(res.status, 401)
    t.equal(res.json?.error, 'unauthorized')
    t.same(res.upstream, [])
  })

  t.test('absolute-form naming the Host is decided on its path and sent to the route\'s upstream only', async (t) => {
    const res = await exchange(`GET http://GW.example/api/x?q=1 HTTP/1.1\r\nHost: gw.example\r\n${auth}\r\n`)
    t.equal(res.status, 200)
    t.equal(res.upstream.length, 1)
    t.equal(res.upstream[0]?.url, '/api/x?q=1', 'origin-form upstream')
    t.equal(res.upstream[0]?.headers.host, new URL(echo.url).host, 'the upstream\'s own host, not the target\'s')
    const anonymous = await exchange('GET http://gw.example/api/x HTTP/1.1\r\nHost: gw.example\r\n\r\n')
    t.equal(anonymous.status, 401, 'the same policy as origin-form')
    t.same(anonymous.upstream, [])
  })

  t.test('an audit route forwards both, as it forwards every denial', async (t) => {
    const query = await exchange(`GET /audited/x?access_token=second HTTP/1.1\r\nHost: gw\r\n${auth}\r\n`)
    t.equal(query.status, 200)
    t.equal(query.upstream.length, 1)
    t.match(gw.decisions().at(-1), { decision: 'audit_deny', reason: 'token_duplicated' })
    const form = await exchange(`POST /audited/x HTTP/1.1\r\nHost: gw\r\n${auth}Content-Type: application/x-www-form-urlencoded\r\n` +
      'Content-Length: 14\r\n\r\naccess_token=x')
    t.equal(form.status, 200)
    t.equal(form.upstream[0]?.body, 'access_token=x')
  })

  t.test('forms without a token reach the upstream byte for byte', async (t) => {
    const forms = ['name=alice&token=x&access_tokens=y&xaccess_token=z', 'a=' + 'b'.repeat(200 * 1024) + '&c=access_token']
    for (const form of forms) {
      const res = await exchange(`POST /api/x HTTP/1.1\r\nHost: gw\r\n${auth}Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n` +
        `Content-Length: ${form.length}\r\n\r\n${form}`)
      t.equal(res.status, 200, `${form.length} bytes`)
      t.equal(res.upstream.length, 1)
      t.equal(res.upstream[0]?.sha256, createHash('sha256').update(form).digest('hex'))
      t.equal(res.upstream[0]?.headers['content-type'], 'application/x-www-form-urlencoded; charset=utf-8')
    }
  })
})
