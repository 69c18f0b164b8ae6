/**
 * `scopegate test` with introspecting issuers (docs/opaque-tokens.md, docs/policy-testing.md): a claims
 * case for an issuer with `introspection.jwtTokens` goes through introspection, answered offline by the
 * stand-in endpoint with the case's claims, so its policy is tested on the path live traffic takes,
 * whether the endpoint is configured or discovered. Nothing leaves the process: the runner's fetch is
 * in-memory.
 */
import t from 'tap'
import { CaseRunner } from '../../src/policy-test/run-cases.js'
import { compileTestConfig } from '../helpers/gateway.js'

const AUD = 'https://api.test'

function config (introspection: Record<string, unknown>, discovery: boolean): ReturnType<typeof compileTestConfig> {
  return compileTestConfig({
    issuers: [{
      id: 'okta',
      issuer: 'https://acme.okta.test',
      ...(discovery ? { discovery: true } : { jwksUri: 'https://acme.okta.test/keys' }),
      algorithms: ['RS256'],
      audiences: [AUD],
      introspection: { clientId: 'gw', clientSecret: 's', opaqueTokens: false, jwtTokens: true, ...introspection }
    }],
    upstreams: { api: { url: 'http://127.0.0.1:3000' } },
    routes: [{ id: 'api', match: { path: '/api', prefix: true }, upstream: 'api', policy: { scopes: { require: ['read'] } } }]
  })
}

for (const [name, discovery, introspection] of [
  ['a configured endpoint', false, { endpoint: 'https://acme.okta.test/introspect' }],
  ['a discovered endpoint', true, {}]
] as const) {
  t.test(`a claims case is decided through introspection (${name})`, async (t) => {
    const runner = await CaseRunner.create(config(introspection, discovery))
    const claims = { iss: 'https://acme.okta.test', aud: AUD, sub: 'alice', client_id: 'web', exp: Math.floor(Date.now() / 1000) + 300 }
    const allowed = await runner.explain({ method: 'GET', path: '/api/x', ip: '10.0.0.1', headers: {}, claims: { ...claims, scope: 'read' } })
    t.equal(allowed.decision.allowed, true)
    t.equal(allowed.decision.tokenPath, 'introspection')
    t.match(allowed.lines.join('\n'), /^introspect +issuer okta answered active/m)
    const denied = await runner.observe({ method: 'GET', path: '/api/x', ip: '10.0.0.1', headers: {}, claims: { ...claims, scope: 'write' } })
    t.match(denied, { decision: 'deny', status: 403, error: 'insufficient_scope' })
  })
}
