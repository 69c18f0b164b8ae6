/**
 * `scopegate dev-issuer`: the demo's dev issuer alone, for when the gateway runs as its own process or
 * container (docker-compose.yml). It names itself by `url` (the `iss` of its tokens, and where the
 * gateway reads discovery and the JWKS, e.g. `http://issuer:8081` on a compose network) while listening
 * on `host:port`, and prints the demo's curl lines against `gateway`. Development only: it mints any
 * token it is asked for.
 */
import { startDevIssuer } from './dev-issuer.js'
import { curlExamples, saveDemoKey } from './run-demo.js'

export interface DevIssuerCommand {
  host: string
  port: number
  /** The issuer URL; default `http://host:port`. */
  url?: string
  /** Where the printed curl lines send requests: the gateway's proxy listener as the user reaches it. */
  gateway: string
}

export async function runDevIssuer (options: DevIssuerCommand): Promise<void> {
  const issuer = await startDevIssuer(options.port, options.host, options.url)
  // So `scopegate token` run beside it (e.g. `docker compose exec issuer …`) mints tokens it accepts.
  await saveDemoKey(issuer.key)
  const tokenUrl = `http://127.0.0.1:${options.port}/token`
  const out = [
    '',
    `scopegate dev issuer: ${issuer.url} (listening on ${options.host}:${options.port}, fresh ES256 key); gateway ${options.gateway}`,
    'Development only: it signs whatever it is asked for. Tokens below are valid for 1 hour.',
    '',
    ...await curlExamples(issuer.key, options.gateway),
    `# more tokens: curl -s -X POST ${tokenUrl} -d 'sub=alice&client=todo-web&aud=https://todo.api&scope=read:todos&roles=editor'`,
    ''
  ]
  process.stdout.write(out.join('\n') + '\n')
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    void issuer.close().then(() => process.exit(0))
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}
