import { readFileSync } from 'node:fs'
import t from 'tap'
import {
  compileStrippedHeaders, DEFAULT_STRIPPED_HEADERS, isStrippedHeader, STRIPPED_PREFIXES
} from '../../src/forward/strip-headers.js'

const identity = new Set(['x-auth-subject', 'x-auth-scopes', 'x-tenant-id'])
const names = compileStrippedHeaders(['X-Debug-User'])

t.test('exact names, prefixes, identity headers and the route\'s own are stripped; others pass', async (t) => {
  const cases: Array<[name: string, stripped: boolean]> = [
    ['x-original-url', true],
    ['x-http-method-override', true],
    ['true-client-ip', true],
    ['forwarded', true],
    ['x-forwarded-prefix', true],
    ['x-forwarded-anything', true],
    ['x-accel-redirect', true],
    ['x-envoy-max-retries', true],
    ['x-auth-', true],
    ['x-auth-whatever', true],
    ['x-tenant-id', true],
    ['x-debug-user', true],
    ['x-forwardedfor', false],
    ['x-authn-trace', false],
    ['x-author', false],
    ['x-request-id', false],
    ['accept', false],
    ['cookie', false],
    ['authorization', false],
    ['host', false],
    ['x', false],
    ['', false]
  ]
  for (const [name, stripped] of cases) t.equal(isStrippedHeader(name, names, identity), stripped, JSON.stringify(name))
})

t.test('underscores are read as dashes, as CGI, WSGI, PHP and Rack read them', async (t) => {
  const cases: Array<[name: string, stripped: boolean]> = [
    ['x_auth_subject', true],
    ['x-auth_scopes', true],
    ['x_auth-anything', true],
    ['x_tenant_id', true],
    ['x_forwarded_for', true],
    ['x_real_ip', true],
    ['x_original_url', true],
    ['x_http_method_override', true],
    ['x_accel_redirect', true],
    ['x_envoy_retry_on', true],
    ['x_debug_user', true],
    ['x_request_id', false],
    ['my_header', false],
    ['_', false]
  ]
  for (const [name, stripped] of cases) t.equal(isStrippedHeader(name, names, identity), stripped, name)
})

t.test('a route\'s extra names apply to that route\'s Set only; the built-in list is always in it', async (t) => {
  const plain = compileStrippedHeaders()
  t.notOk(isStrippedHeader('x-debug-user', plain, identity))
  for (const name of DEFAULT_STRIPPED_HEADERS) {
    t.ok(plain.has(name), name)
    t.equal(name, name.toLowerCase(), `${name} is lower-case, as Node gives names`)
  }
})

t.test('docs/proxying.md lists every built-in name and prefix', async (t) => {
  const docs = readFileSync(new URL('../../docs/proxying.md', import.meta.url), 'utf8').toLowerCase()
  for (const name of DEFAULT_STRIPPED_HEADERS) t.ok(docs.includes(`\`${name}\``), name)
  for (const prefix of STRIPPED_PREFIXES) t.ok(docs.includes(`\`${prefix}*\``), prefix)
})
