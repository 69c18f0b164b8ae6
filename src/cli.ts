#!/usr/bin/env node
/**
 * The `scopegate` command: serve, validate, explain, test, diff, demo, token. Each command parses its own
 * flags and returns an exit code; nothing here knows how a request is decided.
 */
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { configPath, loadConfig } from './config/load.js'
import { ConfigError, formatProblems } from './config/problems.js'
import type { CompiledConfig } from './config/types.js'
import { mintDemoToken, type DemoKey } from './demo/dev-issuer.js'
import { DEMO_KEY_FILE, runDemo } from './demo/run-demo.js'
import { runDevIssuer } from './demo/run-dev-issuer.js'
import { explain } from './decision/explain.js'
import { pemThumbprint } from './request/client-certificate.js'
import { requestOrigin } from './request/request-origin.js'
import { policyTestCommand } from './policy-test/commands.js'
import { checkSigningKeys } from './reissue/signing-keys.js'
import { runServe } from './process/serve.js'
import { probeCommand } from './probe/probe-command.js'
import { insecureUpstreamWarning, insecureUpstreams } from './config/compile-upstream-tls.js'

const USAGE = `usage: scopegate <command> [options]

  serve    [--config FILE]          run the gateway
  validate [--config FILE]          check a config; print every problem, exit 1 if any
  explain  --config FILE --method M --path P (--token JWT | --claims FILE.json) [--ip ADDR] [--host H]
           [--dpop PROOF --origin https://host]   the token is sent as DPoP with this proof
           [--cert CLIENT.pem]      the request came with this client certificate (RFC 8705)
                                    show each step of one decision; exit 0 allow, 2 deny
  test     --config FILE [--reporter human|tap|junit] CASES.yaml...
                                    decide each case; exit 0 all pass, 1 any fail, 2 unusable input
  diff     --from OLD --to NEW [CASES.yaml...]
                                    list the decisions a config change alters; exit 1 if any widened access
  demo                              dev issuer + echo upstream + gateway on config/demo.yaml
  dev-issuer [--host H] [--port P] [--url ISSUER_URL] [--gateway URL]
                                    the demo's dev issuer alone (docker-compose.yml); prints curl lines
  token    [--sub S] [--client C] [--aud A[,B]] [--scope "a b"] [--roles r1,r2] [--exp SECONDS] [--key FILE]
                                    mint a token with the running demo's issuer key
  probe    URL [--host NAME] [--issuer ISS] [--audience AUD] [--timeout 5s]
                                    play a hostile client against a deployed API;
                                    exit 0 protected, 1 not protected, 2 usage or unreachable

The config file is --config, else $SCOPEGATE_CONFIG, else config/scopegate.yaml.`

async function loadOrReport (file: string): Promise<CompiledConfig | null> {
  try {
    const config = await loadConfig(file)
    await checkSigningKeys(config)
    return config
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${file}: invalid config\n${formatProblems(err)}\n`)
      return null
    }
    throw err
  }
}

async function serve (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } } })
  const file = configPath(values.config)
  const config = await loadOrReport(file)
  if (config === null) return 1
  // Signals, hot reload and workers: see serve.ts.
  await runServe(file, config)
  return -1
}

async function devIssuer (args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8081' },
      url: { type: 'string' },
      gateway: { type: 'string', default: 'http://127.0.0.1:8080' }
    }
  })
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write('--port must be a port number\n')
    return 64
  }
  await runDevIssuer({ host: values.host, port, url: values.url, gateway: values.gateway })
  return -1
}

async function validate (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } } })
  const file = configPath(values.config)
  const config = await loadOrReport(file)
  if (config === null) return 1
  // Usable, but worth an operator's eye: an expired listener certificate (docs/tls.md).
  for (const { path, message } of [...config.server.proxy.tls?.warnings ?? [], ...config.server.admin.tls?.warnings ?? [], ...config.server.extAuthz?.tls?.warnings ?? []]) {
    process.stderr.write(`warning: ${path}: ${message}\n`)
  }
  for (const id of insecureUpstreams(config.upstreams)) process.stderr.write(`warning: ${insecureUpstreamWarning(id)}\n`)
  const audit = config.routes.filter((r) => r.mode === 'audit').length
  process.stdout.write(`${file}: ok: ${config.issuersById.size} issuer(s), ${config.upstreams.size} upstream(s), ` +
    `${config.routes.length} route(s)${audit > 0 ? ` (${audit} in audit mode)` : ''}\n`)
  return 0
}

async function explainCommand (args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      method: { type: 'string' },
      path: { type: 'string' },
      token: { type: 'string' },
      claims: { type: 'string' },
      ip: { type: 'string', default: '127.0.0.1' },
      host: { type: 'string' },
      dpop: { type: 'string' },
      origin: { type: 'string' },
      cert: { type: 'string' }
    }
  })
  if ((values.dpop !== undefined || values.origin !== undefined) && (values.token === undefined || values.dpop === undefined || values.origin === undefined)) {
    process.stderr.write('explain --dpop needs --token and --origin (the scheme and host the request was sent to)\n')
    return 64
  }
  if (values.method === undefined || values.path === undefined || (values.token === undefined) === (values.claims === undefined)) {
    process.stderr.write('explain needs --method, --path, and one of --token or --claims\n')
    return 64
  }
  const config = await loadOrReport(configPath(values.config))
  if (config === null) return 1
  let claims: Record<string, unknown> | undefined
  if (values.claims !== undefined) {
    try {
      const parsed: unknown = JSON.parse(await readFile(values.claims, 'utf8'))
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object')
      claims = parsed as Record<string, unknown>
    } catch (err) {
      process.stderr.write(`${values.claims}: cannot read claims: ${(err as Error).message}\n`)
      return 1
    }
  }
  const dpop = values.dpop === undefined ? undefined : { proofs: [values.dpop], origin: requestOrigin(values.origin ?? '') }
  let certificateThumbprint: string | undefined
  if (values.cert !== undefined) {
    try {
      certificateThumbprint = pemThumbprint(await readFile(values.cert, 'utf8'))
    } catch {
      process.stderr.write(`${values.cert}: not a PEM certificate\n`)
      return 1
    }
  }
  const result = await explain(config, { method: values.method.toUpperCase(), path: values.path, ip: values.ip, host: values.host, token: values.token, claims, dpop, certificateThumbprint })
  process.stdout.write(result.lines.join('\n') + '\n')
  return result.allowed ? 0 : 2
}

async function token (args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      sub: { type: 'string' },
      client: { type: 'string' },
      aud: { type: 'string' },
      scope: { type: 'string' },
      roles: { type: 'string' },
      exp: { type: 'string' },
      key: { type: 'string', default: DEMO_KEY_FILE }
    }
  })
  let key: DemoKey
  try {
    key = JSON.parse(await readFile(values.key, 'utf8')) as DemoKey
  } catch {
    process.stderr.write(`no demo issuer key at ${values.key}: start \`scopegate demo\` (npm start) first, or pass --key\n`)
    return 1
  }
  const exp = values.exp === undefined ? undefined : Number(values.exp)
  if (exp !== undefined && !Number.isFinite(exp)) {
    process.stderr.write('--exp must be a number of seconds\n')
    return 64
  }
  const minted = await mintDemoToken(key, {
    sub: values.sub,
    client: values.client,
    aud: values.aud?.split(',').filter((a) => a !== ''),
    scope: values.scope,
    roles: values.roles?.split(',').filter((r) => r !== ''),
    exp
  })
  process.stdout.write(minted + '\n')
  return 0
}

async function main (argv: string[]): Promise<number> {
  const [command, ...args] = argv
  switch (command) {
    case 'serve': return serve(args)
    case 'validate': return validate(args)
    case 'explain': return explainCommand(args)
    case 'test': case 'diff': return policyTestCommand(command, args)
    case 'demo': await runDemo(); return -1
    case 'dev-issuer': return devIssuer(args)
    case 'token': return token(args)
    case 'probe': return probeCommand(args)
    case undefined: case '-h': case '--help': case 'help':
      process.stdout.write(USAGE + '\n')
      return command === undefined ? 64 : 0
    default:
      process.stderr.write(`unknown command "${command}"\n${USAGE}\n`)
      return 64
  }
}

main(process.argv.slice(2)).then((code) => {
  // -1: a long-running command; it exits from its signal handlers.
  if (code >= 0) process.exitCode = code
}, (err: unknown) => {
  process.stderr.write(`scopegate: ${(err as Error).message}\n`)
  // An unknown flag or a flag without its value (parseArgs' ERR_PARSE_ARGS_*) is a usage error, like a missing one.
  process.exitCode = String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS_') ? 64 : 1
})
