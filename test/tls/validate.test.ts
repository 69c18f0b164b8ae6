/**
 * `scopegate validate` on listener TLS files (docs/tls.md, docs/istio.md#tls for the ext_authz listener):
 * each problem with its config path, paths
 * relative to the config file's directory, an expired certificate a warning only; and `serve` refuses to
 * start on a file that cannot be used.
 */
import { copyFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { run } from '../helpers/cli.js'
import { certificateKit } from '../helpers/certificates.js'

t.jobs = 4
const kit = certificateKit()
t.teardown(() => { kit.remove() })
kit.issue('server')
const other = kit.issue('other')
kit.issue('expired', { expired: true })
copyFileSync(other.key, join(kit.dir, 'not-the-key.key'))
writeFileSync(join(kit.dir, 'garbage.crt'), 'not a certificate\n')

const config = (server: string): string => `
server:
${server}
issuers:
  - id: auth0
    issuer: https://tenant.example.com/
    jwksUri: https://tenant.example.com/.well-known/jwks.json
    algorithms: [RS256]
    audiences: [https://todo.api]
upstreams:
  todo: { url: "http://todo-api:3000" }
routes:
  - id: todos
    match: { path: /todos, prefix: true }
    upstream: todo
`

const cases: Array<[name: string, server: string, code: number, lines: string[]]> = [
  ['relative paths from the config file, all good', '  proxy: { http2: true, tls: { cert: server.crt, key: server.key, clientCa: ca.crt, clientCertificate: require } }', 0, []],
  ['a file that cannot be read', '  proxy: { tls: { cert: missing.crt, key: server.key } }', 1, ['server.proxy.tls.cert: cannot be read (ENOENT)']],
  ['a key that is not the certificate\'s', '  admin: { tls: { cert: server.crt, key: not-the-key.key } }', 1, ['server.admin.tls.key: does not match the certificate in cert']],
  ['a certificate file with no certificate', '  proxy: { tls: { cert: garbage.crt, key: server.key } }', 1, ['server.proxy.tls.cert: holds no PEM certificate']],
  ['a key file with no key', '  proxy: { tls: { cert: server.crt, key: garbage.crt } }', 1, ['server.proxy.tls.key: holds no usable PEM private key']],
  ['client certificates without a CA', '  proxy: { tls: { cert: server.crt, key: server.key, clientCertificate: request } }', 1, ['server.proxy.tls.clientCa: is required when clientCertificate is request']],
  ['a CA that would not be used', '  proxy: { tls: { cert: server.crt, key: server.key, clientCa: ca.crt } }', 1, ['server.proxy.tls.clientCertificate: is none, so clientCa would not be used: say request or require']],
  ['an expired certificate: a warning', '  proxy: { tls: { cert: expired.crt, key: expired.key } }', 0, ['warning: server.proxy.tls.cert: the certificate expired on 2020-01-02T00:00:00.000Z']],
  ['TLS below 1.2 is not offered', '  proxy: { tls: { cert: server.crt, key: server.key, minVersion: TLSv1.1 } }', 1, ['server.proxy.tls.minVersion: must be one of: TLSv1.2, TLSv1.3']],
  // The ext_authz gRPC listener takes the same block (docs/istio.md#tls).
  ['ext_authz: relative paths, mTLS, all good', '  extAuthz: { tls: { cert: server.crt, key: server.key, clientCa: ca.crt, clientCertificate: require, minVersion: TLSv1.3 } }', 0, []],
  ['ext_authz: a key that is not the certificate\'s', '  extAuthz: { tls: { cert: server.crt, key: not-the-key.key } }', 1, ['server.extAuthz.tls.key: does not match the certificate in cert']],
  ['ext_authz: an expired certificate, a warning', '  extAuthz: { tls: { cert: expired.crt, key: expired.key } }', 0, ['warning: server.extAuthz.tls.cert: the certificate expired on 2020-01-02T00:00:00.000Z']]
]

for (const [name, serverBlock, code, lines] of cases) {
  t.test(name, async (t) => {
    const file = `${name.replace(/\W+/g, '-')}.yaml`
    writeFileSync(join(kit.dir, file), config(serverBlock))
    const result = await run(['validate', '--config', file], kit.dir)
    t.equal(result.code, code)
    const printed = result.stderr.trim().split('\n').filter((line) => line !== '' && !line.endsWith('invalid config'))
    t.same(printed, lines)
    t.notMatch(result.stderr + result.stdout, /BEGIN|PRIVATE/, 'no file content is printed')
  })
}

t.test('serve does not start on a listener it cannot secure', async (t) => {
  writeFileSync(join(kit.dir, 'serve.yaml'), config('  proxy: { port: 0, tls: { cert: server.crt, key: not-the-key.key } }\n  admin: { port: 0 }'))
  const result = await run(['serve', '--config', 'serve.yaml'], kit.dir)
  t.equal(result.code, 1)
  t.match(result.stderr, /server\.proxy\.tls\.key: does not match the certificate in cert/)
})
