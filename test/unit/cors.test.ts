/**
 * The CORS header logic (`src/cors/cors-headers.ts`) as tables: which origins match, what a preflight is
 * answered, what an actual response carries, and how an upstream's own CORS fields are replaced.
 */
import t from 'tap'
import { compileTestConfig } from '../helpers/gateway.js'
import { originAllowed, preflightCorsHeaders, responseCorsHeaders, upstreamCorsHeaders, type CompiledCors } from '../../src/cors/cors-headers.js'
import { ConfigError } from '../../src/config/problems.js'

function corsOf (cors: Record<string, unknown>, methods?: string[]): CompiledCors {
  const route = compileTestConfig({
    upstreams: { u: { url: 'http://127.0.0.1:1' } },
    routes: [{ id: 'r', match: { path: '/', prefix: true, ...(methods === undefined ? {} : { methods }) }, upstream: 'u', auth: 'none', cors }]
  }).routes[0]
  if (route?.cors == null) throw new Error('no cors')
  return route.cors
}

t.test('origins: exact (any case), `*.` patterns of one label or more, nothing else', async (t) => {
  const cors = corsOf({ origins: ['https://app.example.com', 'https://*.example.org', 'http://*.local.test:8080'] })
  const cases: Array<[string, boolean]> = [
    ['https://app.example.com', true],
    ['HTTPS://APP.EXAMPLE.COM', true],
    ['http://app.example.com', false],
    ['https://app.example.com:8443', false],
    ['https://app.example.com.evil.net', false],
    ['https://a.example.org', true],
    ['https://a.b.example.org', true],
    ['https://example.org', false],
    ['https://evil-example.org', false],
    ['https://.example.org', false],
    ['https://a.example.org:443', false],
    ['https://user@a.example.org', false],
    ['http://x.local.test:8080', true],
    ['http://x.local.test', false],
    ['null', false],
    ['', false]
  ]
  for (const [origin, allowed] of cases) t.equal(originAllowed(cors, origin), allowed, origin)
  t.equal(originAllowed(corsOf({ origins: ['*'] }), 'https://anything.example'), true, '"*" allows every origin')
})

t.test('preflight answers: granted, or only Vary', async (t) => {
  const cors = corsOf({ origins: ['https://app.example.com'], methods: ['GET', 'PUT', 'DELETE'], headers: ['Authorization', 'Content-Type', 'X-Request-Id'], maxAge: '1h', credentials: true })
  const vary = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers'
  const granted = {
    vary,
    'access-control-allow-origin': 'https://app.example.com',
    'access-control-allow-methods': 'GET, PUT, DELETE',
    'access-control-max-age': '3600',
    'access-control-allow-headers': 'authorization, content-type, x-request-id',
    'access-control-allow-credentials': 'true'
  }
  const cases: Array<[string, string, string, string | undefined, Record<string, string>]> = [
    ['a listed method and headers', 'https://app.example.com', 'PUT', 'authorization,content-type', granted],
    ['header names in any case, with spaces', 'https://app.example.com', 'DELETE', 'Authorization, X-Request-ID', granted],
    ['no request headers', 'https://app.example.com', 'GET', undefined, granted],
    ['a safelisted method not listed (POST)', 'https://app.example.com', 'POST', 'authorization', granted],
    ['an origin outside the list', 'https://evil.example', 'GET', 'authorization', { vary }],
    ['a method not allowed', 'https://app.example.com', 'PATCH', 'authorization', { vary }],
    ['a header not allowed', 'https://app.example.com', 'PUT', 'authorization, x-evil', { vary }]
  ]
  for (const [name, origin, method, headers, expected] of cases) t.strictSame(preflightCorsHeaders(cors, origin, method, headers), expected, name)
})

t.test('actual responses: the origin echoed (or *), credentials, exposed headers, always Vary: Origin', async (t) => {
  const cases: Array<[string, Record<string, unknown>, string | undefined, Record<string, string>]> = [
    ['allowed origin', { origins: ['https://app.example.com'] }, 'https://app.example.com',
      { vary: 'Origin', 'access-control-allow-origin': 'https://app.example.com' }],
    ['with credentials and exposed headers', { origins: ['https://*.example.com'], credentials: true, exposeHeaders: ['X-Total', 'RateLimit'] }, 'https://a.example.com',
      { vary: 'Origin', 'access-control-allow-origin': 'https://a.example.com', 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'X-Total, RateLimit' }],
    ['"*" without credentials', { origins: ['*'] }, 'https://any.example', { vary: 'Origin', 'access-control-allow-origin': '*' }],
    ['origin outside the list: no CORS field', { origins: ['https://app.example.com'] }, 'https://evil.example', { vary: 'Origin' }],
    ['no Origin (not a CORS request)', { origins: ['https://app.example.com'] }, undefined, { vary: 'Origin' }]
  ]
  for (const [name, config, origin, expected] of cases) t.strictSame(responseCorsHeaders(corsOf(config), origin), expected, name)
})

t.test('upstream responses: the upstream cannot widen CORS; Origin joins Vary', async (t) => {
  const cors = corsOf({ origins: ['https://app.example.com'] })
  t.strictSame(upstreamCorsHeaders({ 'content-type': 'text/plain', 'access-control-allow-origin': '*', 'Access-Control-Allow-Credentials': 'true', vary: 'Accept-Encoding' }, cors, 'https://evil.example'),
    { 'content-type': 'text/plain', vary: 'Accept-Encoding, Origin' })
  t.strictSame(upstreamCorsHeaders({ vary: 'origin' }, cors, 'https://app.example.com'), { vary: 'origin', 'access-control-allow-origin': 'https://app.example.com' })
  t.strictSame(upstreamCorsHeaders({}, cors, 'https://app.example.com'), { vary: 'Origin', 'access-control-allow-origin': 'https://app.example.com' })
})

t.test('config: methods default to the route\'s; "*" with credentials is refused; bad origins are refused', async (t) => {
  t.strictSame([...corsOf({ origins: ['https://a.example'] }, ['GET', 'POST']).methods], ['GET', 'POST', 'HEAD'])
  t.strictSame([...corsOf({ origins: ['https://a.example'] }).methods], ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'])
  t.equal(corsOf({ origins: ['https://a.example'] }).maxAge, 600, 'max-age defaults to 10 minutes')
  const problems = (cors: Record<string, unknown>): string[] => {
    try {
      corsOf(cors)
      return []
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      return err.problems.map((p) => `${p.path}: ${p.message}`)
    }
  }
  t.match(problems({ origins: ['*'], credentials: true }), [/routes\[0\]\.cors\.origins: "\*" cannot be used with credentials/])
  for (const origin of ['https://app.example.com/', 'app.example.com', 'https://*.*.example.com', 'https://a*.example.com', 'ftp://x.example']) {
    t.match(problems({ origins: [origin] }), [/routes\[0\]\.cors\.origins\[0\]/], origin)
  }
})
