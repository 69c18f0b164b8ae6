import type { FastifyReply } from 'fastify'
import t from 'tap'
import { GatewayError, deny, toGatewayError } from '../../src/shared/errors.js'
import { errorBody, errorHeaders, rawErrorResponse, REALM, sendError, wwwAuthenticate } from '../../src/http/reply-error.js'

const challenge = (params: string): string => `Bearer realm="scopegate"${params}`

t.test('the realm is scopegate', async (t) => {
  t.equal(REALM, 'scopegate')
})

t.test('WWW-Authenticate per RFC 6750 for each 401 and 403 of the contract', async (t) => {
  const cases: Array<[name: string, err: GatewayError, expected: string]> = [
    ['no token: the bare challenge, no error= (RFC 6750 §3.1)', deny.tokenMissing(), challenge('')],
    ['invalid token',
      deny.invalidToken('token_expired', 'the token has expired', 'exp 1, now 2'),
      challenge(', error="invalid_token", error_description="the token has expired"')],
    ['policy denial',
      deny.policy(401, 'audience_denied', 'tokens for this audience are not allowed here', 'aud http://todoapi2.api'),
      challenge(', error="end_users_not_allowed", error_description="tokens for this audience are not allowed here"')],
    ['policy denial as 403',
      deny.policy(403, 'client_denied', 'this application is not allowed here'),
      challenge(', error="end_users_not_allowed", error_description="this application is not allowed here"')],
    ['insufficient scope names what is required',
      deny.insufficientScope(403, ['read:todos', 'write:todos']),
      challenge(', error="insufficient_scope", error_description="the token does not grant the scopes this route requires", scope="read:todos write:todos"')]
  ]
  for (const [name, err, expected] of cases) {
    t.equal(wwwAuthenticate(err), expected, name)
    t.equal(errorHeaders(err)['www-authenticate'], expected, `${name}: in the headers`)
  }
})

t.test('no WWW-Authenticate outside 401 and 403', async (t) => {
  const cases: Array<[name: string, err: GatewayError]> = [
    ['400 malformed header', deny.badRequest('authorization_malformed', 'the Authorization header must be "Bearer <token>"')],
    ['400 duplicated header', deny.badRequest('authorization_duplicated', 'more than one Authorization header')],
    ['404 no route', deny.noRoute('GET /x')],
    ['503 keys unavailable', deny.keysUnavailable(30)],
    ['500 internal', deny.internal('boom')],
    ['502 upstream', new GatewayError(502, 'bad_gateway', 'upstream_refused', 'the upstream could not be reached')],
    ['504 upstream', new GatewayError(504, 'gateway_timeout', 'upstream_timeout', 'the upstream did not answer in time')],
    ['431 headers', new GatewayError(431, 'request_header_fields_too_large', 'headers_too_large', 'the request headers are too large')]
  ]
  for (const [name, err] of cases) t.equal(errorHeaders(err)['www-authenticate'], undefined, name)
})

t.test('quoted values escape quotes and backslashes', async (t) => {
  const err = new GatewayError(401, 'invalid_token', 'token_malformed', 'say "hi" \\ bye', { scope: 'a"b c\\d' })
  t.equal(wwwAuthenticate(err), challenge(', error="invalid_token", error_description="say \\"hi\\" \\\\ bye", scope="a\\"b c\\\\d"'))
})

t.test('every denial is JSON and no-store', async (t) => {
  for (const err of [deny.tokenMissing(), deny.noRoute(), deny.keysUnavailable(5), deny.badRequest('path_invalid', 'x')]) {
    const headers = errorHeaders(err)
    t.equal(headers['content-type'], 'application/json; charset=utf-8', err.code)
    t.equal(headers['cache-control'], 'no-store', err.code)
  }
})

t.test('503 carries Retry-After in seconds; nothing else does', async (t) => {
  t.equal(errorHeaders(deny.keysUnavailable(30))['retry-after'], '30')
  t.equal(errorHeaders(deny.keysUnavailable(1))['retry-after'], '1')
  t.equal(errorHeaders(deny.tokenMissing())['retry-after'], undefined)
  t.equal(errorHeaders(deny.keysUnavailable(30))['www-authenticate'], undefined)
})

t.test('the body is {error, error_description}: the public description only, never the detail', async (t) => {
  const err = deny.invalidToken('token_signature_invalid', 'the token signature is invalid', 'issuer auth0 kid "k1" eyJhbGciOi...')
  const body = JSON.parse(errorBody(err)) as Record<string, unknown>
  t.same(body, { error: 'invalid_token', error_description: 'the token signature is invalid' })
  t.notMatch(errorBody(err), /kid|eyJ/)
})

t.test('an unexpected error becomes a generic server_error whose message stays out of the reply', async (t) => {
  const err = toGatewayError(new Error('ECONNREFUSED 10.0.0.5:5432 password=hunter2'))
  t.equal(err.status, 500)
  t.same(JSON.parse(errorBody(err)), { error: 'server_error', error_description: 'internal error' })
  t.match(err.detail, /hunter2/, 'kept for the log')
  t.equal(toGatewayError(err), err, 'a GatewayError passes as it is')
  t.equal(toGatewayError('a string').detail, 'a string')
})

t.test('sendError sets status, headers and body on the reply', async (t) => {
  const sent: { status?: number, headers?: Record<string, string>, body?: unknown } = {}
  const reply = {
    code (status: number) { sent.status = status; return this },
    headers (headers: Record<string, string>) { sent.headers = headers; return this },
    send (body: unknown) { sent.body = body; return this }
  }
  const err = deny.insufficientScope(403, ['read:todos'])
  t.equal(sendError(reply as unknown as FastifyReply, err), reply as unknown as FastifyReply)
  t.equal(sent.status, 403)
  t.same(sent.headers, errorHeaders(err))
  t.equal(sent.body, errorBody(err))
})

t.test('rawErrorResponse is a complete HTTP/1.1 response that closes the connection', async (t) => {
  const err = new GatewayError(431, 'request_header_fields_too_large', 'headers_too_large', 'the request headers are too large')
  const raw = rawErrorResponse(err, 'Request Header Fields Too Large')
  const [head, body] = raw.split('\r\n\r\n')
  const lines = (head ?? '').split('\r\n')
  t.equal(lines[0], 'HTTP/1.1 431 Request Header Fields Too Large')
  t.ok(lines.includes('content-type: application/json; charset=utf-8'))
  t.ok(lines.includes('cache-control: no-store'))
  t.ok(lines.includes('connection: close'))
  t.ok(lines.includes(`content-length: ${Buffer.byteLength(body ?? '')}`))
  t.same(JSON.parse(body ?? ''), { error: 'request_header_fields_too_large', error_description: 'the request headers are too large' })
  const unauthorized = rawErrorResponse(deny.tokenMissing(), 'Unauthorized')
  t.match(unauthorized, /\r\nwww-authenticate: Bearer realm="scopegate"\r\n/)
})
