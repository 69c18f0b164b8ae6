/**
 * The `introspection` block at load time (docs/opaque-tokens.md, "Config"): the endpoint and client
 * authentication rules, secrets read from files and never printable, and one issuer at most for opaque
 * tokens. Also loads the page's own examples, which need environment variables and key files that the
 * shared docs test (test/docs/config-blocks.test.ts) does not supply.
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inspect } from 'node:util'
import t from 'tap'
import { parse, stringify } from 'yaml'
import { compileConfig } from '../../src/config/compile.js'
import { parseConfigText } from '../../src/config/parse.js'
import { problemsOf } from '../../src/config/problems.js'
import type { CompiledConfig } from '../../src/config/types.js'

const dir = mkdtempSync(join(tmpdir(), 'scopegate-introspection-'))
const secretFile = join(dir, 'secret')
writeFileSync(secretFile, 'file-secret-4411\n')
const pemFile = join(dir, 'key.pem')
writeFileSync(pemFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }))

function config (introspection: Record<string, unknown> | Array<Record<string, unknown>>, env: Record<string, string> = {}): CompiledConfig {
  const list = Array.isArray(introspection) ? introspection : [introspection]
  const issuers = list.map((block, i) => ({
    id: `idp${i}`,
    issuer: `https://idp${i}.test`,
    jwksUri: `https://idp${i}.test/jwks`,
    algorithms: ['RS256'],
    audiences: ['https://api.test'],
    introspection: block
  }))
  const raw = { issuers, upstreams: { api: { url: 'http://127.0.0.1:3000' } }, routes: [{ id: 'api', match: { path: '/api' }, upstream: 'api' }] }
  return compileConfig(parseConfigText(JSON.stringify(raw), 'test.json', env), 'test.json')
}

function problems (introspection: Record<string, unknown> | Array<Record<string, unknown>>): string[] {
  try {
    config(introspection)
  } catch (err) {
    return (problemsOf(err) ?? []).map((p) => `${p.path}: ${p.message}`)
  }
  return []
}

t.test('defaults, and the values the request path reads', async (t) => {
  const c = config({ endpoint: 'https://idp0.test/introspect', clientId: 'gw', clientSecret: 's3cret' })
  const i = c.issuersById.get('idp0')?.introspection
  t.match(i, {
    endpoint: { kind: 'url', url: 'https://idp0.test/introspect' },
    clientId: 'gw',
    auth: { method: 'client_secret_basic' },
    opaqueTokens: true,
    jwtTokens: false,
    roles: ['roles'],
    cacheTtlMs: 60_000,
    refusalTtlMs: 10_000,
    timeoutMs: 2_000,
    retryAfterSec: 5,
    maxBytes: 65536
  })
  t.equal(c.opaqueIssuer?.id, 'idp0')
})

t.test('a secret never prints: JSON, inspect and string conversion show [redacted]', async (t) => {
  for (const block of [{ clientSecret: 's3cret-inline' }, { clientSecretFile: secretFile }]) {
    const c = config({ endpoint: 'https://idp0.test/introspect', clientId: 'gw', ...block })
    const auth = c.issuersById.get('idp0')?.introspection?.auth
    t.ok(auth !== undefined && auth.method !== 'private_key_jwt')
    if (auth === undefined || auth.method === 'private_key_jwt') continue
    t.equal(auth.secret.reveal(), 'clientSecret' in block ? 's3cret-inline' : 'file-secret-4411', 'the file\'s trailing newline is dropped')
    const printed = [JSON.stringify(c.issuersById.get('idp0')), inspect(c, { depth: 10 }), String(auth.secret)].join('\n')
    t.notOk(printed.includes('s3cret-inline') || printed.includes('file-secret-4411'), 'the secret is not printed')
    t.ok(printed.includes('[redacted]'))
  }
})

t.test('the secret from the environment', async (t) => {
  const c = config({ endpoint: 'https://idp0.test/introspect', clientId: 'gw', clientSecret: '${SECRET}' }, { SECRET: 'from-env' })
  const auth = c.issuersById.get('idp0')?.introspection?.auth
  t.equal(auth?.method !== 'private_key_jwt' ? auth?.secret.reveal() : null, 'from-env')
})

t.test('private_key_jwt: the algorithm follows the key', async (t) => {
  const c = config({ endpoint: 'https://idp0.test/introspect', clientId: 'gw', authMethod: 'private_key_jwt', privateKeyFile: pemFile })
  t.match(c.issuersById.get('idp0')?.introspection?.auth, { method: 'private_key_jwt', alg: 'ES256' })
})

const bad: Array<[string, Record<string, unknown> | Array<Record<string, unknown>>, RegExp]> = [
  ['no endpoint and no discovery', { clientId: 'gw', clientSecret: 's' }, /introspection\.endpoint: is required unless the issuer uses discovery/],
  ['no secret', { endpoint: 'https://idp0.test/i', clientId: 'gw' }, /needs exactly one of clientSecret or clientSecretFile/],
  ['both secrets', { endpoint: 'https://idp0.test/i', clientId: 'gw', clientSecret: 's', clientSecretFile: secretFile }, /needs exactly one/],
  ['a secret file that is missing', { endpoint: 'https://idp0.test/i', clientId: 'gw', clientSecretFile: join(dir, 'nope') }, /clientSecretFile: cannot be read \(ENOENT\)/],
  ['private_key_jwt without a key', { endpoint: 'https://idp0.test/i', clientId: 'gw', authMethod: 'private_key_jwt' }, /privateKeyFile: is required for private_key_jwt/],
  ['private_key_jwt with a file that is not a key', { endpoint: 'https://idp0.test/i', clientId: 'gw', authMethod: 'private_key_jwt', privateKeyFile: secretFile }, /not a PEM private key/],
  ['a private key with a secret method', { endpoint: 'https://idp0.test/i', clientId: 'gw', clientSecret: 's', privateKeyFile: pemFile }, /is only for private_key_jwt/],
  ['two issuers for opaque tokens', [
    { endpoint: 'https://idp0.test/i', clientId: 'gw', clientSecret: 's' },
    { endpoint: 'https://idp1.test/i', clientId: 'gw', clientSecret: 's' }
  ], /issuers: introspection\.opaqueTokens is true for "idp0" and "idp1"/],
  ['an unknown key', { endpoint: 'https://idp0.test/i', clientId: 'gw', clientSecret: 's', secret: 'x' }, /secret/],
  ['a bad duration', { endpoint: 'https://idp0.test/i', clientId: 'gw', clientSecret: 's', cacheTtl: 'soon' }, /cacheTtl/]
]

for (const [name, block, expected] of bad) {
  t.test(`refused at load: ${name}`, async (t) => {
    const found = problems(block)
    t.ok(found.some((p) => expected.test(p)), `${found.join('; ')} matches ${String(expected)}`)
    for (const p of found) t.notOk(p.includes('file-secret-4411') || p.includes('BEGIN PRIVATE KEY'), 'no secret in a problem')
  })
}

t.test('two issuers: one for opaque tokens, the other for its own JWTs only', async (t) => {
  const c = config([
    { endpoint: 'https://idp0.test/i', clientId: 'gw', clientSecret: 's' },
    { endpoint: 'https://idp1.test/i', clientId: 'gw', clientSecret: 's', opaqueTokens: false, jwtTokens: true }
  ])
  t.equal(c.opaqueIssuer?.id, 'idp0')
})

t.test('docs/opaque-tokens.md: every config example loads (with its variables and key files supplied)', async (t) => {
  const page = readFileSync(new URL('../../docs/opaque-tokens.md', import.meta.url), 'utf8')
  const blocks = [...page.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '')
  t.ok(blocks.length >= 3, 'Keycloak, Okta and Auth0')
  for (const text of blocks) {
    const doc = parse(text.replaceAll('/run/secrets/okta-introspection.pem', pemFile)) as Record<string, unknown>
    const raw = { ...doc, upstreams: { todo: { url: 'http://127.0.0.1:3000' } }, routes: [{ id: 'base', match: { path: '/base' }, upstream: 'todo' }] }
    t.doesNotThrow(() => compileConfig(parseConfigText(stringify(raw), 'opaque-tokens.md', { KEYCLOAK_INTROSPECTION_SECRET: 'x' }), 'opaque-tokens.md'), text.split('\n')[2] ?? 'example')
  }
})
