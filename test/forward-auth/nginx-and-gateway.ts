/**
 * What every test that puts a real nginx in front of scopegate's forward auth starts from: nginx found,
 * an issuer and an echo upstream, and a scopegate that trusts loopback (nginx names the original request
 * in `X-Original-*` and `X-Forwarded-*`, docs/forward-auth.md) with issuer `main` and upstream `todo`;
 * the test gives the routes and anything else. nginx must be installed (CI's `.ci/run` installs
 * nginx-light): without it the test fails, it does not skip.
 */
import type { Test } from 'tap'
import type { Echo } from '../helpers/echo-upstream.js'
import { issuerAndEcho, startGateway, type TestGateway } from '../helpers/gateway.js'
import type { JwksServer, TestKey } from '../helpers/jwks-server.js'
import { findNginx, type Nginx } from './nginx-process.js'

export interface NginxAndGateway {
  nginx: Nginx
  key: TestKey
  jwks: JwksServer
  echo: Echo
  gw: TestGateway
}

/**
 * nginx and a started scopegate whose issuer accepts `audience`; `config`: the routes and any other
 * top-level keys. Null, after a test failure, when nginx is not installed. Everything is closed when `t` ends.
 */
export async function nginxAndGateway (t: Test, audience: string, config: Record<string, unknown>): Promise<NginxAndGateway | null> {
  const nginx = findNginx()
  if (nginx === null) {
    t.fail('nginx is not installed: this end-to-end test needs the Debian package (apt-get install -y nginx-light); CI installs it in .ci/run')
    return null
  }
  const { key, jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { trustProxy: ['127.0.0.1/32'] },
    issuers: [{ id: 'main', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [audience] }],
    upstreams: { todo: { url: echo.url } },
    ...config
  })
  t.teardown(() => gw.close())
  return { nginx, key, jwks, echo, gw }
}
