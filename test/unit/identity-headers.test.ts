import t from 'tap'
import type { CompiledRoute } from '../../src/config/types.js'
import { headerValue, identityHeaders } from '../../src/forward/identity-headers.js'
import type { KeyEntry } from '../../src/keys/import-jwk.js'
import { identityClaims } from '../../src/token/claims.js'
import { cacheKey, verifiedToken, type VerifiedToken } from '../../src/token/verified-token.js'
import { compileTestConfig } from '../helpers/gateway.js'

const config = compileTestConfig({
  issuers: [{
    id: 'auth0',
    issuer: 'https://tenant.example.com/',
    jwksUri: 'https://tenant.example.com/jwks',
    algorithms: ['RS256'],
    audiences: ['https://todo.api'],
    claims: { roles: 'https://example.com/roles' }
  }],
  upstreams: { todo: { url: 'http://todo-api:3000' } },
  routes: [
    { id: 'plain', match: { path: '/plain' }, upstream: 'todo' },
    {
      id: 'claims',
      match: { path: '/claims' },
      upstream: 'todo',
      forward: {
        claims: {
          'X-Tenant-Id': 'tenant',
          'x-org': ['org', 'id'],
          'x-level': 'level',
          'x-missing': 'nope',
          'x-null': 'nothing',
          'x-name': 'name'
        }
      }
    }
  ]
})

function route (id: string): CompiledRoute {
  const found = config.routes.find((r) => r.id === id)
  if (found === undefined) throw new Error(`no route ${id}`)
  return found
}

const issuer = [...config.issuersById.values()][0]
function tokenOf (claims: Record<string, unknown>): VerifiedToken {
  if (issuer === undefined) throw new Error('no issuer')
  const key = { kid: 'k', key: undefined, algorithms: new Set(['RS256']) } as unknown as KeyEntry
  return verifiedToken(identityClaims(claims, issuer.claims), issuer, claims, 0, key, 0, cacheKey(JSON.stringify(claims)))
}

t.test('headerValue keeps visible ASCII and percent-encodes everything else', async (t) => {
  const cases: Array<[name: string, value: string, expected: string]> = [
    ['plain', 'alice', 'alice'],
    ['printable punctuation and spaces', 'a b:c/d?e=f&g "h" <i> 100%', 'a b:c/d?e=f&g "h" <i> 100%'],
    ['empty', '', ''],
    ['CR LF cannot split the header', 'alice\r\nx-auth-roles: admin', 'alice%0D%0Ax-auth-roles:%20admin'],
    ['a lone LF', 'a\nb', 'a%0Ab'],
    ['NUL', 'a\u0000b', 'a%00b'],
    ['tab', 'a\tb', 'a%09b'],
    ['DEL', 'a\u007fb', 'a%7Fb'],
    ['non-ASCII as UTF-8', 'Zoë', 'Zo%C3%AB'],
    ['CJK', '東京', '%E6%9D%B1%E4%BA%AC'],
    ['astral plane', 'a😀', 'a%F0%9F%98%80'],
    ['a lone surrogate becomes U+FFFD', 'a\ud800b', 'a%EF%BF%BDb'],
    ['a lone low surrogate too', '\udc00', '%EF%BF%BD'],
    ['an escape already in a value that needs encoding is kept as written', 'é%41 %zz', '%C3%A9%41%20%25zz']
  ]
  for (const [name, value, expected] of cases) {
    let actual: string
    try { actual = headerValue(value) } catch (err) { actual = `threw ${(err as Error).name}` }
    t.equal(actual, expected, name)
    t.match(actual, /^[\x20-\x7e]*$/, `${name}: the result is header-safe`)
  }
})

t.test('an anonymous request gets only the route header', async (t) => {
  t.same(identityHeaders(route('claims'), null, []), { 'x-auth-route': 'claims' })
})

t.test('the identity of a verified token, with the narrowed scopes', async (t) => {
  const token = tokenOf({
    sub: 'auth0|alice',
    client_id: 'todo-web',
    scope: 'read:todos write:todos admin',
    'https://example.com/roles': ['editor', 'user']
  })
  t.same(identityHeaders(route('plain'), token, ['write:todos', 'read:todos']), {
    'x-auth-route': 'plain',
    'x-auth-subject': 'auth0|alice',
    'x-auth-client-id': 'todo-web',
    'x-auth-scopes': 'write:todos read:todos',
    'x-auth-roles': 'editor,user',
    'x-auth-issuer': 'https://tenant.example.com/'
  }, 'scopes are the ones given, space-delimited; roles comma-delimited')
})

t.test('absent identity claims give absent headers, but the scopes header is always there', async (t) => {
  const headers = identityHeaders(route('plain'), tokenOf({}), [])
  t.same(headers, { 'x-auth-route': 'plain', 'x-auth-scopes': '', 'x-auth-issuer': 'https://tenant.example.com/' })
})

t.test('identity values from claims are made header-safe', async (t) => {
  const headers = identityHeaders(route('plain'), tokenOf({ sub: 'alice\r\nx-auth-roles: admin', client_id: 'Zoë', 'https://example.com/roles': ['ädmin'] }), [])
  t.equal(headers['x-auth-subject'], 'alice%0D%0Ax-auth-roles:%20admin', 'once encoded, the whole value is: spaces too')
  t.equal(headers['x-auth-client-id'], 'Zo%C3%AB')
  t.equal(headers['x-auth-roles'], '%C3%A4dmin')
  const odd = identityHeaders(route('claims'), tokenOf({ sub: 'alice\ud800', name: '\udc00' }), [])
  t.equal(odd['x-auth-subject'], 'alice%EF%BF%BD', 'a lone surrogate in a signed claim does not fail the request')
  t.equal(odd['x-name'], '%EF%BF%BD')
})

t.test('forward.claims: a string as is, a number as its decimal text; absent or null sends no header', async (t) => {
  // Other types never reach identityHeaders: the verifier refuses them (test/unit/claim-types.test.ts).
  const headers = identityHeaders(route('claims'), tokenOf({
    tenant: 'acme',
    org: { id: 7 },
    level: 3.5,
    nothing: null,
    name: 'Zoë\nAdmin'
  }), [])
  const cases: Array<[header: string, expected: string | undefined]> = [
    ['x-tenant-id', 'acme'],
    ['x-org', '7'],
    ['x-level', '3.5'],
    ['x-missing', undefined],
    ['x-null', undefined],
    ['x-name', 'Zo%C3%AB%0AAdmin']
  ]
  for (const [header, expected] of cases) t.equal(headers[header], expected, header)
  t.notOk('X-Tenant-Id' in headers, 'header names are lower-case')
})
