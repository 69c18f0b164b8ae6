import t from 'tap'
import { checkHost, checkHttp2Host } from '../../src/request/check-host.js'
import { GatewayError } from '../../src/shared/errors.js'

/** null when the raw header list is accepted, else the reason of the 400. */
function refusal (rawHeaders: string[], target: string, version = '1.1'): string | null {
  try {
    checkHost(rawHeaders, target, version)
    return null
  } catch (err) {
    if (!(err instanceof GatewayError) || err.status !== 400 || err.code !== 'invalid_request') throw err
    return err.reason
  }
}

/** The same, for a request with these Host values (names in alternating case) among other headers. */
const checked = (hosts: string[], target: string, version = '1.1'): string | null =>
  refusal(['User-Agent', 'test', ...hosts.flatMap((host, i) => [i % 2 === 0 ? 'Host' : 'HOST', host])], target, version)

t.test('one Host that agrees with the target is accepted', async (t) => {
  const cases: Array<[name: string, hosts: string[], target: string, version?: string]> = [
    ['origin-form', ['gw.example'], '/api/x'],
    ['origin-form, Host with a port', ['gw.example:8080'], '/api/x?q=1'],
    ['absolute-form, same authority', ['gw.example'], 'http://gw.example/api/x'],
    ['absolute-form, case aside', ['GW.example:8080'], 'HTTPS://gw.EXAMPLE:8080/api'],
    ['absolute-form without a path', ['gw.example'], 'http://gw.example?x=1'],
    ['HTTP/1.0 without Host', [], '/api/x', '1.0'],
    ['HTTP/1.0 absolute-form without Host', [], 'http://gw.example/api/x', '1.0'],
    ['asterisk-form is normalize-path\'s to refuse', ['gw.example'], '*']
  ]
  for (const [name, hosts, target, version] of cases) t.equal(checked(hosts, target, version), null, name)
})

t.test('other shapes are refused with a reason', async (t) => {
  const cases: Array<[name: string, hosts: string[], target: string, reason: string]> = [
    ['two Host headers', ['a.example', 'b.example'], '/x', 'host_duplicated'],
    ['two identical Host headers', ['a.example', 'a.example'], '/x', 'host_duplicated'],
    ['no Host on HTTP/1.1', [], '/x', 'request_malformed'],
    ['absolute-form naming another host', ['gw.example'], 'http://other.example/x', 'host_mismatch'],
    ['absolute-form naming another port', ['gw.example'], 'http://gw.example:81/x', 'host_mismatch'],
    ['absolute-form with user information', ['gw.example'], 'http://u:p@gw.example/x', 'host_mismatch'],
    ['absolute-form with an empty authority', ['gw.example'], 'http:///x', 'host_mismatch']
  ]
  for (const [name, hosts, target, reason] of cases) t.equal(checked(hosts, target), reason, name)
})

t.test('Host is found in the raw list whatever its case, and only Host', async (t) => {
  t.equal(refusal(['Host', 'a', 'X-Host', 'b', 'host', 'c'], '/x'), 'host_duplicated')
  t.equal(refusal(['X-Host', 'b', 'hosts', 'd', 'hOsT', 'a'], '/x'), null)
  t.equal(refusal(['X-Host', 'b', 'hosts', 'd'], '/x'), 'request_malformed')
})

/** The reason checkHttp2Host refuses a raw h2 header list with, or its host. */
function refusalHttp2 (rawHeaders: string[]): string {
  try {
    return `host ${checkHttp2Host(rawHeaders)}`
  } catch (err) {
    return (err as GatewayError).reason
  }
}

t.test('HTTP/2: :authority is the host, and a Host beside it must agree', async (t) => {
  const cases: Array<[name: string, rawHeaders: string[], expected: string]> = [
    [':authority alone', [':method', 'GET', ':authority', 'gw.example', ':path', '/x'], 'host gw.example'],
    ['Host alone (allowed in place of :authority)', [':method', 'GET', 'host', 'gw.example:8443'], 'host gw.example:8443'],
    ['both, the same (case aside)', [':authority', 'GW.example', 'host', 'gw.EXAMPLE'], 'host GW.example'],
    ['both, disagreeing', [':authority', 'gw.example', 'host', 'evil.example'], 'host_mismatch'],
    ['both, another port', [':authority', 'gw.example', 'host', 'gw.example:81'], 'host_mismatch'],
    ['two :authority', [':authority', 'gw.example', ':authority', 'evil.example'], 'host_duplicated'],
    ['two Host', [':authority', 'gw.example', 'host', 'gw.example', 'Host', 'gw.example'], 'host_duplicated'],
    ['neither', [':method', 'GET', ':path', '/x'], 'request_malformed'],
    ['an empty :authority', [':authority', ''], 'request_malformed'],
    ['user information', [':authority', 'user@gw.example'], 'host_mismatch']
  ]
  for (const [name, rawHeaders, expected] of cases) t.equal(refusalHttp2(rawHeaders), expected, name)
})
