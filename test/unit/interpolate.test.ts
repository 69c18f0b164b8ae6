import t from 'tap'
import { formatPath, interpolate } from '../../src/config/interpolate.js'

interface Case {
  name: string
  tree: unknown
  env: Record<string, string | undefined>
  value: unknown
  problems?: Array<{ path: string, message: string }>
}

const cases: Case[] = [
  { name: 'a variable is replaced by its value', tree: { a: '${X}' }, env: { X: 'x' }, value: { a: 'x' } },
  {
    name: 'placeholders inside a longer string are replaced in place',
    tree: { url: 'http://${HOST}:${PORT}/api' },
    env: { HOST: 'todo', PORT: '3000' },
    value: { url: 'http://todo:3000/api' }
  },
  { name: 'the default applies when the variable is unset', tree: { a: '${X:-fallback}' }, env: {}, value: { a: 'fallback' } },
  { name: 'the default applies when the variable is empty', tree: { a: '${X:-fallback}' }, env: { X: '' }, value: { a: 'fallback' } },
  { name: 'a set variable beats the default', tree: { a: '${X:-fallback}' }, env: { X: 'set' }, value: { a: 'set' } },
  { name: 'an empty default is allowed', tree: { a: 'x${X:-}y' }, env: {}, value: { a: 'xy' } },
  { name: 'a set but empty variable without default is the empty string', tree: { a: '${X}' }, env: { X: '' }, value: { a: '' } },
  {
    name: 'an unset variable without default is a problem at its path',
    tree: { server: { proxy: { port: '${PORT}' } } },
    env: {},
    value: { server: { proxy: { port: '' } } },
    problems: [{ path: 'server.proxy.port', message: 'environment variable PORT is not set' }]
  },
  {
    name: 'paths name list items and keys that are not plain names',
    tree: { routes: [{}, { policy: { grants: { roles: { 'https://x/roles': ['${A}'] } } } }] },
    env: {},
    value: { routes: [{}, { policy: { grants: { roles: { 'https://x/roles': [''] } } } }] },
    problems: [{ path: 'routes[1].policy.grants.roles["https://x/roles"][0]', message: 'environment variable A is not set' }]
  },
  {
    name: 'every unset variable is reported',
    tree: ['${A}${B}', '${C:-c}'],
    env: {},
    value: ['', 'c'],
    problems: [
      { path: '[0]', message: 'environment variable A is not set' },
      { path: '[0]', message: 'environment variable B is not set' }
    ]
  },
  { name: 'a whole placeholder holding a number becomes a number', tree: { port: '${PORT}' }, env: { PORT: '8080' }, value: { port: 8080 } },
  { name: 'a whole placeholder default is re-typed too', tree: { port: '${PORT:-9090}' }, env: {}, value: { port: 9090 } },
  { name: 'a whole placeholder holding true becomes a boolean', tree: { on: '${ON}' }, env: { ON: 'true' }, value: { on: true } },
  { name: 'a placeholder inside a longer string is not re-typed', tree: { a: '${N}0' }, env: { N: '8' }, value: { a: '80' } },
  { name: 'a value cannot inject a list', tree: { a: '${V}' }, env: { V: '[x, y]' }, value: { a: '[x, y]' } },
  { name: 'a value cannot inject a mapping', tree: { a: '${V}' }, env: { V: 'k: v' }, value: { a: 'k: v' } },
  { name: 'a value reading as null stays a string', tree: { a: '${V}' }, env: { V: 'null' }, value: { a: 'null' } },
  { name: 'a quoted-looking value keeps its quotes', tree: { a: '${V}' }, env: { V: '"8080"' }, value: { a: '"8080"' } },
  { name: '$${ is a literal ${', tree: { a: '$${HOME} and $${X:-y}' }, env: { HOME: '/root' }, value: { a: '${HOME} and ${X:-y}' } },
  { name: 'a literal ${ is never re-typed', tree: { a: '$${X}' }, env: { X: '1' }, value: { a: '${X}' } },
  { name: 'a $ not followed by { is itself', tree: { a: 'pa$$word $HOME $' }, env: { HOME: '/root' }, value: { a: 'pa$$word $HOME $' } },
  { name: 'keys are never substituted', tree: { '${K}': '${K}' }, env: { K: 'k' }, value: { '${K}': 'k' } },
  { name: 'non-strings pass through', tree: { n: 1, b: false, z: null, l: [2, true] }, env: {}, value: { n: 1, b: false, z: null, l: [2, true] } },
  {
    name: 'a malformed variable name is a problem',
    tree: { a: '${1X}' },
    env: {},
    value: { a: '${1X}' },
    problems: [{ path: 'a', message: 'invalid placeholder "${1X}": write ${NAME} or ${NAME:-default}, or $${ for a literal ${' }]
  },
  {
    name: 'a nested placeholder in a default is a problem',
    tree: { a: '${A:-${B}}' },
    env: {},
    value: { a: '${A:-${B}}' },
    problems: [{ path: 'a', message: 'invalid placeholder "${A:-${B}": write ${NAME} or ${NAME:-default}, or $${ for a literal ${' }]
  },
  {
    name: 'an unterminated placeholder is a problem',
    tree: { a: 'x${PORT' },
    env: { PORT: '1' },
    value: { a: 'x${PORT' },
    problems: [{ path: 'a', message: 'unterminated placeholder "${PORT": write ${NAME} or ${NAME:-default}, or $${ for a literal ${' }]
  }
]

for (const c of cases) {
  t.test(c.name, async (t) => {
    const result = interpolate(c.tree, c.env)
    t.strictSame(result.value, c.value)
    t.strictSame(result.problems, c.problems ?? [])
  })
}

t.test('the input tree is not modified', async (t) => {
  const tree = { a: ['${X}'], b: { c: '${X}' } }
  interpolate(tree, { X: '1' })
  t.strictSame(tree, { a: ['${X}'], b: { c: '${X}' } })
})

t.test('re-typed values are listed with their text', async (t) => {
  const result = interpolate({ server: { proxy: { port: '${PORT}' } }, ids: ['${ID}', '${NAME}'] }, { PORT: '80', ID: '0123', NAME: 'x' })
  t.strictSame(result.value, { server: { proxy: { port: 80 } }, ids: [123, 'x'] })
  t.strictSame([...result.retyped], [['server.proxy.port', '80'], ['ids[0]', '0123']])
})

t.test('a __proto__ key stays an own key', async (t) => {
  const tree: unknown = JSON.parse('{"__proto__": {"polluted": "${X}"}}')
  const result = interpolate(tree, { X: 'yes' })
  t.equal(Object.getPrototypeOf(result.value), Object.prototype)
  t.strictSame(Object.keys(result.value as object), ['__proto__'])
  t.equal(({} as Record<string, unknown>).polluted, undefined)
})

t.test('formatPath writes dotted paths with bracketed indexes and odd keys', async (t) => {
  const cases: Array<[Array<string | number>, string]> = [
    [[], ''],
    [['routes', 2, 'policy', 'audience', 'deny', 0], 'routes[2].policy.audience.deny[0]'],
    [['upstreams', 'todo-api', 'url'], 'upstreams.todo-api.url'],
    [['grants', 'roles', 'https://x/roles'], 'grants.roles["https://x/roles"]'],
    [['a', 'has space', 'b'], 'a["has space"].b'],
    [[0, 'a'], '[0].a']
  ]
  for (const [segments, text] of cases) t.equal(formatPath(segments), text, text)
})
