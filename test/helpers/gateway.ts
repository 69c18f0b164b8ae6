/**
 * A real scopegate on 127.0.0.1 port 0 for end-to-end tests, built from a plain config object through
 * the same validation and compilation as a config file, with its JSON log lines collected.
 */
import { Writable } from 'node:stream'
import type { Test } from 'tap'
import { compileConfig } from '../../src/config/compile.js'
import { parseConfigText } from '../../src/config/parse.js'
import type { CompiledConfig } from '../../src/config/types.js'
import type { EngineOptions } from '../../src/decision/engine.js'
import { Gateway, type GatewayOptions } from '../../src/process/gateway.js'
import { createLogger } from '../../src/observability/logger.js'
import { startEcho, type Echo } from './echo-upstream.js'
import { makeKey, startJwksServer, type JwksServer, type TestKey } from './jwks-server.js'

export interface TestGateway {
  proxyUrl: string
  adminUrl: string
  gateway: Gateway
  /** Every log line, parsed. */
  logs: Array<Record<string, unknown>>
  /** The decision log lines only. */
  decisions: () => Array<Record<string, unknown>>
  /** Every raw log line, for asserting what never appears. */
  rawLog: () => string
  close: () => Promise<void>
}

/** Validate, default and compile a config object exactly as a config file would be. */
export function compileTestConfig (config: Record<string, unknown>): CompiledConfig {
  return compileConfig(parseConfigText(JSON.stringify(config), 'test.json', {}), 'test.json')
}

export async function startGateway (config: Record<string, unknown>, options: EngineOptions & Pick<GatewayOptions, 'env' | 'statusHeartbeatMs' | 'redisRetireGraceMs'> = {}): Promise<TestGateway> {
  const logs: Array<Record<string, unknown>> = []
  const raw: string[] = []
  const destination = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue
        raw.push(line)
        logs.push(JSON.parse(line) as Record<string, unknown>)
      }
      done()
    }
  })
  const logger = createLogger({ level: 'info', destination })
  const gateway = new Gateway({ config: compileTestConfig(config), logger, ...options })
  const loopback = { host: '127.0.0.1', port: 0 }
  const { proxyUrl, adminUrl } = await gateway.start({ proxy: loopback, admin: loopback })
  return {
    proxyUrl,
    adminUrl,
    gateway,
    logs,
    decisions: () => logs.filter((l) => l.msg === 'decision'),
    rawLog: () => raw.join('\n'),
    close: () => gateway.close()
  }
}

/** The usual cast of an end-to-end test: one ES256 key, a JWKS server publishing it, and an echo upstream, closed when the test ends. */
export async function issuerAndEcho (t: Test): Promise<{ key: TestKey, jwks: JwksServer, echo: Echo }> {
  const key = await makeKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(() => jwks.close())
  const echo = await startEcho()
  t.teardown(() => echo.close())
  return { key, jwks, echo }
}
