import t from 'tap'
import type { CompiledRoute } from '../../src/config/types.js'
import { buildRouteTable, findAmbiguities, prefixKey } from '../../src/routing/route-table.js'
import { compileTestConfig } from '../helpers/gateway.js'

interface RouteSpec { id: string, path: string, prefix?: boolean, methods?: string[] }

/** Routes compiled exactly as a config file's would be. */
function compileRoutes (specs: RouteSpec[]): readonly CompiledRoute[] {
  return compileTestConfig({
    upstreams: { api: { url: 'http://api.internal:3000' } },
    routes: specs.map(({ id, path, prefix = false, methods }) => ({
      id, upstream: 'api', auth: 'none', match: { path, prefix, ...(methods === undefined ? {} : { methods }) }
    }))
  }).routes
}

function table (specs: RouteSpec[]): (method: string, path: string) => string | null {
  const routes = buildRouteTable(compileRoutes(specs))
  return (method, path) => routes.match(method, path, '')?.id ?? null
}

/** Routes built by hand, for the ambiguity checks that compilation would refuse. */
const template = compileRoutes([{ id: 'template', path: '/' }])[0] as CompiledRoute
function handRoutes (specs: RouteSpec[]): CompiledRoute[] {
  return specs.map(({ id, path, prefix = false, methods }, index) => ({
    ...template, id, index, path, prefix, methods: methods === undefined ? null : new Set(methods)
  }))
}

t.test('an exact route beats a prefix route on the same path', async (t) => {
  const match = table([
    { id: 'todos-prefix', path: '/todos', prefix: true },
    { id: 'todos-exact', path: '/todos' }
  ])
  t.equal(match('GET', '/todos'), 'todos-exact')
  t.equal(match('GET', '/todos/1'), 'todos-prefix')
  t.equal(match('GET', '/todos/'), 'todos-prefix', 'an exact route matches its path only, not with a trailing slash')
})

t.test('the longest prefix wins, whatever the order of the routes', async (t) => {
  for (const order of ['short first', 'long first']) {
    const specs: RouteSpec[] = [
      { id: 'api', path: '/api', prefix: true },
      { id: 'api-admin', path: '/api/admin', prefix: true },
      { id: 'api-admin-users', path: '/api/admin/users', prefix: true }
    ]
    const match = table(order === 'short first' ? specs : specs.reverse())
    const cases: Array<[path: string, expected: string | null]> = [
      ['/api', 'api'],
      ['/api/things', 'api'],
      ['/api/admin', 'api-admin'],
      ['/api/admin/settings', 'api-admin'],
      ['/api/admin/users', 'api-admin-users'],
      ['/api/admin/users/7/roles', 'api-admin-users'],
      ['/apiary', null],
      ['/', null]
    ]
    for (const [path, expected] of cases) t.equal(match('GET', path), expected, `${order}: ${path}`)
  }
})

t.test('a prefix matches whole segments only', async (t) => {
  const match = table([{ id: 'todos', path: '/todos', prefix: true }])
  const cases: Array<[path: string, expected: string | null]> = [
    ['/todos', 'todos'],
    ['/todos/', 'todos'],
    ['/todos/1', 'todos'],
    ['/todos/1/comments/', 'todos'],
    ['/todosx', null],
    ['/todos.json', null],
    ['/todo', null],
    ['/', null],
    ['/other/todos', null]
  ]
  for (const [path, expected] of cases) t.equal(match('GET', path), expected, path)
})

t.test('a prefix written with a trailing slash is the same prefix', async (t) => {
  t.equal(prefixKey('/todos/'), '/todos')
  t.equal(prefixKey('/todos'), '/todos')
  t.equal(prefixKey('/'), '/')
  const match = table([{ id: 'todos', path: '/todos/', prefix: true }])
  t.equal(match('GET', '/todos'), 'todos')
  t.equal(match('GET', '/todos/1'), 'todos')
  t.equal(match('GET', '/todosx'), null)
})

t.test('the "/" prefix is a catch-all that every longer route beats', async (t) => {
  const match = table([
    { id: 'catch-all', path: '/', prefix: true },
    { id: 'todos', path: '/todos', prefix: true },
    { id: 'health', path: '/health' }
  ])
  const cases: Array<[path: string, expected: string]> = [
    ['/', 'catch-all'],
    ['/anything', 'catch-all'],
    ['/deep/down/here/', 'catch-all'],
    ['/todosx', 'catch-all'],
    ['/todos/1', 'todos'],
    ['/health', 'health'],
    ['/health/deep', 'catch-all']
  ]
  for (const [path, expected] of cases) t.equal(match('GET', path), expected, path)
})

t.test('no route: null', async (t) => {
  t.equal(table([{ id: 'health', path: '/health' }])('GET', '/'), null, 'only exact routes')
  t.equal(table([{ id: 'a', path: '/a', prefix: true }])('GET', '/b'), null, 'only prefix routes')
})

t.test('methods filter; a route that refuses the method falls through to a shorter prefix that accepts it', async (t) => {
  const match = table([
    { id: 'fallback', path: '/', prefix: true, methods: ['GET', 'POST', 'DELETE'] },
    { id: 'todos-read', path: '/todos', prefix: true, methods: ['GET'] },
    { id: 'todos-write', path: '/todos', prefix: true, methods: ['POST', 'PUT'] },
    { id: 'todo-one-get', path: '/todos/1', methods: ['GET'] }
  ])
  const cases: Array<[method: string, path: string, expected: string | null]> = [
    ['GET', '/todos', 'todos-read'],
    ['POST', '/todos', 'todos-write'],
    ['PUT', '/todos/2', 'todos-write'],
    ['DELETE', '/todos/2', 'fallback'],
    ['GET', '/todos/1', 'todo-one-get'],
    ['PUT', '/todos/1', 'todos-write'],
    ['DELETE', '/todos/1', 'fallback'],
    ['PATCH', '/todos/1', null],
    ['PATCH', '/', null],
    ['OPTIONS', '/todos', null]
  ]
  for (const [method, path, expected] of cases) t.equal(match(method, path), expected, `${method} ${path}`)
})

t.test('HEAD is matched as GET, but GET is not matched by a HEAD-only route', async (t) => {
  const match = table([
    { id: 'read', path: '/todos', prefix: true, methods: ['GET'] },
    { id: 'head-only', path: '/status', methods: ['HEAD'] }
  ])
  t.equal(match('HEAD', '/todos/1'), 'read')
  t.equal(match('HEAD', '/status'), 'head-only')
  t.equal(match('GET', '/status'), null)
})

t.test('a route without methods accepts every method', async (t) => {
  const match = table([{ id: 'any', path: '/any', prefix: true }])
  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PROPFIND']) {
    t.equal(match(method, '/any/thing'), 'any', method)
  }
})

t.test('compiled methods are upper-case and null when not configured', async (t) => {
  const [some, all] = compileRoutes([
    { id: 'some', path: '/some', methods: ['GET', 'POST'] },
    { id: 'all', path: '/all' }
  ])
  t.same([...some?.methods ?? []], ['GET', 'POST'])
  t.equal(all?.methods, null)
})

t.test('findAmbiguities: routes that could match the same request equally', async (t) => {
  const cases: Array<[name: string, specs: RouteSpec[], ambiguous: number[]]> = [
    ['same exact path, no methods', [{ id: 'a', path: '/x' }, { id: 'b', path: '/x' }], [1]],
    ['same prefix, no methods', [{ id: 'a', path: '/x', prefix: true }, { id: 'b', path: '/x', prefix: true }], [1]],
    ['same prefix written with and without trailing slash',
      [{ id: 'a', path: '/x', prefix: true }, { id: 'b', path: '/x/', prefix: true }], [1]],
    ['overlapping methods', [{ id: 'a', path: '/x', methods: ['GET', 'POST'] }, { id: 'b', path: '/x', methods: ['POST', 'PUT'] }], [1]],
    ['all methods vs some', [{ id: 'a', path: '/x' }, { id: 'b', path: '/x', methods: ['DELETE'] }], [1]],
    ['some methods vs all', [{ id: 'a', path: '/x', methods: ['DELETE'] }, { id: 'b', path: '/x' }], [1]],
    ['GET vs HEAD overlap (HEAD is served by GET)', [{ id: 'a', path: '/x', methods: ['GET'] }, { id: 'b', path: '/x', methods: ['HEAD'] }], [1]],
    ['HEAD vs GET overlap, either order', [{ id: 'a', path: '/x', methods: ['HEAD'] }, { id: 'b', path: '/x', methods: ['GET'] }], [1]],
    ['three on one path: each later one is reported against each earlier one',
      [{ id: 'a', path: '/x' }, { id: 'b', path: '/x' }, { id: 'c', path: '/x' }], [1, 2, 2]],
    ['distinct methods are fine', [{ id: 'a', path: '/x', methods: ['GET'] }, { id: 'b', path: '/x', methods: ['POST', 'PUT'] }], []],
    ['exact and prefix on the same path are fine', [{ id: 'a', path: '/x' }, { id: 'b', path: '/x', prefix: true }], []],
    ['different paths are fine', [{ id: 'a', path: '/x' }, { id: 'b', path: '/y' }, { id: 'c', path: '/x/y', prefix: true }], []],
    ['exact /x and exact /x/ are different paths', [{ id: 'a', path: '/x' }, { id: 'b', path: '/x/' }], []]
  ]
  for (const [name, specs, ambiguous] of cases) {
    t.same(findAmbiguities(handRoutes(specs)).map((p) => p.index), ambiguous, name)
  }
})

t.test('an ambiguity message names the other route', async (t) => {
  const [problem] = findAmbiguities(handRoutes([
    { id: 'todos-read', path: '/todos', methods: ['GET'] },
    { id: 'todos-head', path: '/todos', methods: ['HEAD'] }
  ]))
  t.equal(problem?.index, 1)
  t.match(problem?.message, /"todos-read" \(routes\[0\]\)/)
})
