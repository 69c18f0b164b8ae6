/**
 * Host patterns and request hosts (src/routing/match-host.ts), and the route table's host order: the
 * exact host, then wildcards from the longest suffix, then routes for every host.
 */
import t from 'tap'
import { compileHostPattern, hostMatches, requestHost } from '../../src/routing/match-host.js'
import { buildRouteTable } from '../../src/routing/route-table.js'
import type { ConfigProblem } from '../../src/config/problems.js'
import { configProblems } from '../helpers/config-problems.js'
import { compileTestConfig } from '../helpers/gateway.js'

t.test('a request host is compared lower-case, without port and one trailing dot', async (t) => {
  const cases: Array<[sent: string | undefined, host: string]> = [
    ['api.example.com', 'api.example.com'],
    ['API.Example.COM', 'api.example.com'],
    ['api.example.com:8443', 'api.example.com'],
    ['api.example.com.', 'api.example.com'],
    ['api.example.com.:443', 'api.example.com'],
    ['  api.example.com  ', 'api.example.com'],
    ['[2001:DB8::1]:8080', '[2001:db8::1]'],
    ['[::1]', '[::1]'],
    ['10.0.0.1:80', '10.0.0.1'],
    ['', ''],
    [undefined, '']
  ]
  for (const [sent, host] of cases) t.equal(requestHost(sent), host, JSON.stringify(sent))
})

t.test('patterns: exact names and one leading wildcard; anything else is refused', async (t) => {
  t.same(compileHostPattern('API.example.com'), { kind: 'exact', host: 'api.example.com' })
  t.same(compileHostPattern('*.Example.com'), { kind: 'wildcard', suffix: '.example.com' })
  t.same(compileHostPattern('10.0.0.1'), { kind: 'exact', host: '10.0.0.1' })
  for (const bad of ['*', '*.', 'a.*.com', '*example.com', 'api.example.com:8080', 'a b', 'http://a', '-a.com', 'a..com', '**.a.com', '*.[::1]']) {
    t.equal(compileHostPattern(bad), null, bad)
  }
})

t.test('which hosts a pattern matches', async (t) => {
  const cases: Array<[pattern: string, host: string, matches: boolean]> = [
    ['api.example.com', 'api.example.com', true],
    ['api.example.com', 'www.example.com', false],
    ['api.example.com', 'api.example.com.evil.net', false],
    ['api.example.com', 'x.api.example.com', false],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'a.b.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'aexample.com', false],
    ['*.example.com', 'a.example.com.evil.net', false],
    ['*.example.com', '', false]
  ]
  for (const [text, host, matches] of cases) {
    const pattern = compileHostPattern(text)
    if (pattern === null) throw new Error(`bad pattern ${text}`)
    t.equal(hostMatches(pattern, requestHost(host)), matches, `${text} ~ ${host}`)
  }
})

t.test('the route table: exact host, then the longest wildcard, then every host; paths within each', async (t) => {
  const routes = compileTestConfig({
    upstreams: { api: { url: 'http://api.internal:3000' } },
    routes: [
      { id: 'any-api', upstream: 'api', auth: 'none', match: { path: '/api', prefix: true } },
      { id: 'any-root', upstream: 'api', auth: 'none', match: { path: '/', prefix: true } },
      { id: 'a-api', upstream: 'api', auth: 'none', match: { path: '/api', prefix: true, host: 'a.example.com' } },
      { id: 'b-api', upstream: 'api', auth: 'none', match: { path: '/api', prefix: true, host: 'B.example.com' } },
      { id: 'wild-api', upstream: 'api', auth: 'none', match: { path: '/api', prefix: true, host: '*.example.com' } },
      { id: 'wild-eu-api', upstream: 'api', auth: 'none', match: { path: '/api', prefix: true, host: '*.eu.example.com' } },
      { id: 'a-admin-get', upstream: 'api', auth: 'none', match: { path: '/admin', methods: ['GET'], host: 'a.example.com' } }
    ]
  }).routes
  const table = buildRouteTable(routes)
  const cases: Array<[method: string, host: string, path: string, route: string | null]> = [
    ['GET', 'a.example.com', '/api/x', 'a-api'],
    ['GET', 'b.example.com', '/api/x', 'b-api'],
    ['GET', 'c.example.com', '/api/x', 'wild-api'],
    ['GET', 'x.eu.example.com', '/api/x', 'wild-eu-api'],
    ['GET', 'x.y.eu.example.com', '/api/x', 'wild-eu-api'],
    ['GET', 'eu.example.com', '/api/x', 'wild-api'],
    ['GET', 'example.com', '/api/x', 'any-api'],
    ['GET', 'other.net', '/api/x', 'any-api'],
    ['GET', '', '/api/x', 'any-api'],
    ['GET', 'a.example.com', '/admin', 'a-admin-get'],
    ['HEAD', 'a.example.com', '/admin', 'a-admin-get'],
    // Nothing of a.example.com's matches: the wildcards and then the routes for every host are tried.
    ['POST', 'a.example.com', '/admin', 'any-root'],
    ['GET', 'a.example.com', '/other', 'any-root'],
    ['GET', 'b.example.com', '/admin', 'any-root']
  ]
  for (const [method, host, path, route] of cases) t.equal(table.match(method, path, host)?.id ?? null, route, `${method} ${host}${path}`)
})

t.test('overlaps: the same host, path and methods is a config error; another host is not', async (t) => {
  const compile = (routes: unknown[]): unknown => compileTestConfig({ upstreams: { api: { url: 'http://api.internal:3000' } }, routes })
  const problems = (routes: unknown[]): ConfigProblem[] => configProblems(() => compile(routes))
  t.doesNotThrow(() => compile([
    { id: 'a', upstream: 'api', auth: 'none', match: { path: '/api', host: 'a.example.com' } },
    { id: 'b', upstream: 'api', auth: 'none', match: { path: '/api', host: 'b.example.com' } },
    { id: 'w', upstream: 'api', auth: 'none', match: { path: '/api', host: '*.example.com' } },
    { id: 'any', upstream: 'api', auth: 'none', match: { path: '/api' } }
  ]))
  t.match(problems([
    { id: 'a', upstream: 'api', auth: 'none', match: { path: '/api', host: 'a.example.com' } },
    { id: 'a2', upstream: 'api', auth: 'none', match: { path: '/api', host: 'A.Example.com' } }
  ]), [{ path: 'routes[1].match', message: /matches the same requests as route "a"/ }])
  t.match(problems([
    { id: 'bad', upstream: 'api', auth: 'none', match: { path: '/api', host: 'a.example.com:8443' } }
  ]), [{ path: 'routes[0].match.host', message: /host name without port/ }])
})
