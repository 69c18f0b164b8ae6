/**
 * An upstream's `tls` and `http2` keys at load (docs/tls.md, "TLS to upstreams"): files read and checked,
 * each problem reported with its config path; relative paths resolved from the config file's directory;
 * `validate` warns, naming the upstream, when verification is off.
 */
import { copyFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { compileConfig } from '../../src/config/compile.js'
import { parseConfigText } from '../../src/config/parse.js'
import type { ConfigProblem } from '../../src/config/problems.js'
import { configProblems } from '../helpers/config-problems.js'
import { compileTestConfig } from '../helpers/gateway.js'
import { run } from '../helpers/cli.js'
import { makeTestPki } from '../helpers/test-ca.js'

type Obj = Record<string, unknown>

const pki = makeTestPki(t)

function config (upstreams: Obj): Obj {
  return {
    issuers: [{ id: 'a', issuer: 'https://issuer.example', jwksUri: 'https://issuer.example/jwks', algorithms: ['ES256'], audiences: ['x'] }],
    upstreams,
    routes: [{ id: 'r', match: { path: '/r', prefix: true }, upstream: Object.keys(upstreams)[0] }]
  }
}

function problemsOf (obj: Obj): ConfigProblem[] {
  return configProblems(() => compileTestConfig(obj))
}

t.test('a tls block that compiles: files read, verification on', async (t) => {
  const compiled = compileTestConfig(config({
    orders: { url: 'https://orders.internal:8443', tls: { ca: pki.caCert, servername: 'orders.test', cert: pki.clientCert, key: pki.clientKey } }
  }))
  const tls = compiled.upstreams.get('orders')?.tls
  t.equal(tls?.rejectUnauthorized, true)
  t.equal(tls?.servername, 'orders.test')
  t.same(tls?.ca, pki.read(pki.caCert))
  t.same(tls?.cert, pki.read(pki.clientCert))
  t.equal(compileTestConfig(config({ plain: { url: 'https://plain.internal' } })).upstreams.get('plain')?.tls, null, 'no block: the defaults')
  t.equal(compileTestConfig(config({ plain: { url: 'http://plain.internal' } })).upstreams.get('plain')?.http2, false, 'http2 is opt-in')
})

t.test('problems, each with its path', async (t) => {
  const garbage = join(pki.dir, 'garbage.pem')
  writeFileSync(garbage, 'not a certificate\n')
  const cases: Array<[string, Obj, ConfigProblem[]]> = [
    ['a CA file that cannot be read', { u: { url: 'https://u', tls: { ca: join(pki.dir, 'missing.crt') } } },
      [{ path: 'upstreams.u.tls.ca', message: `${join(pki.dir, 'missing.crt')}: cannot be read (ENOENT)` }]],
    ['a CA file without a certificate', { u: { url: 'https://u', tls: { ca: garbage } } },
      [{ path: 'upstreams.u.tls.ca', message: `${garbage}: holds no PEM certificate` }]],
    ['a key that is not the certificate\'s', { u: { url: 'https://u', tls: { cert: pki.clientCert, key: pki.serverKey } } },
      [{ path: 'upstreams.u.tls.key', message: `${pki.serverKey}: is not the private key of ${pki.clientCert}` }]],
    ['a key file that is not a key', { u: { url: 'https://u', tls: { cert: pki.clientCert, key: garbage } } },
      [{ path: 'upstreams.u.tls.key', message: `${garbage}: is not an unencrypted PEM private key` }]],
    ['a certificate without its key', { u: { url: 'https://u', tls: { cert: pki.clientCert } } },
      [{ path: 'upstreams.u.tls.key', message: 'is required with tls.cert' }]],
    ['tls on an http:// upstream', { u: { url: 'http://u', tls: { ca: pki.caCert } } },
      [{ path: 'upstreams.u.tls', message: 'applies to https:// upstreams only' }]],
    ['a CA with insecureSkipVerify', { u: { url: 'https://u', tls: { ca: pki.caCert, insecureSkipVerify: true } } },
      [{ path: 'upstreams.u.tls.ca', message: 'is never used with insecureSkipVerify: drop one of them' }]],
    ['two upstreams at one origin, connecting differently', { u: { url: 'https://u/a' }, v: { url: 'https://u/b', http2: true } },
      [{ path: 'upstreams.v', message: 'has the origin of upstreams.u with other tls or http2 settings: connections are pooled by origin, so they must agree' }]]
  ]
  for (const [name, upstreams, expected] of cases) t.same(problemsOf(config(upstreams)), expected, name)
  t.same(problemsOf(config({ u: { url: 'https://u', tls: { verify: false } } })).map((p) => p.path), ['upstreams.u.tls'], 'an unknown key')
})

t.test('relative paths are read from the config file\'s directory', async (t) => {
  copyFileSync(pki.caCert, join(pki.dir, 'relative-ca.crt'))
  const raw = parseConfigText(JSON.stringify(config({ u: { url: 'https://u', tls: { ca: 'relative-ca.crt' } } })), 'c.json', {})
  t.same(compileConfig(raw, join(pki.dir, 'scopegate.json')).upstreams.get('u')?.tls?.ca, pki.read(pki.caCert))
})

t.test('validate warns, naming the upstream, when verification is off', async (t) => {
  const file = join(pki.dir, 'insecure.json')
  writeFileSync(file, JSON.stringify(config({ legacy: { url: 'https://legacy.internal', tls: { insecureSkipVerify: true } } })))
  const { code, stdout, stderr } = await run(['validate', '--config', file], pki.dir)
  t.equal(code, 0, 'a warning, not a problem')
  t.match(stdout, /ok: 1 issuer\(s\), 1 upstream\(s\)/)
  t.match(stderr, /warning: upstreams\.legacy\.tls\.insecureSkipVerify is true: the upstream's certificate is not verified/)
})
