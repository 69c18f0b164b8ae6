/**
 * `scopegate demo` (`npm start`): the dev issuer, an echo upstream and the gateway on
 * `config/demo.yaml`, which encodes every seed rule. It prints ready-to-paste curl lines with real
 * tokens, one for an allow and one for each kind of deny, and keeps running until Ctrl-C.
 */
import { chmod, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { isAbsolute, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../config/load.js'
import { Gateway } from '../process/gateway.js'
import { createLogger } from '../observability/logger.js'
import { startDevIssuer, mintDemoToken, type DemoKey, type MintRequest } from './dev-issuer.js'
import { startEchoUpstream } from './echo-upstream.js'

/** Where the running demo leaves its issuer key, so `scopegate token` can mint tokens it accepts. */
export const DEMO_KEY_FILE = join(tmpdir(), 'scopegate-demo-key.json')

/** Saves the demo issuer's key (owner-only, also over an older file) for `scopegate token`. */
export async function saveDemoKey (key: DemoKey): Promise<void> {
  await writeFile(DEMO_KEY_FILE, JSON.stringify(key), { mode: 0o600 })
  await chmod(DEMO_KEY_FILE, 0o600)
}
export const DEMO_CONFIG = fileURLToPath(new URL('../../config/demo.yaml', import.meta.url))

interface Example {
  title: string
  expect: string
  method?: string
  path: string
  token?: MintRequest
  rawToken?: string
}

/** The first example's token: an editor asking for more than the role grants. */
const EDITOR_READS: MintRequest = { sub: 'alice', client: 'todo-web', aud: 'https://todo.api', scope: 'read:todos write:todos delete:todos', roles: ['editor'] }

const EXAMPLES: Example[] = [
  { title: 'allow: an editor reads todos; delete:todos is narrowed away', expect: '200, x-auth-scopes "read:todos write:todos"', path: '/todos', token: EDITOR_READS },
  { title: 'allow: an admin ("*") keeps every scope it asked for', expect: '200', method: 'DELETE', path: '/todos/42', token: { sub: 'root', client: 'todo-web', aud: 'https://todo.api', scope: 'read:todos write:todos delete:todos', roles: ['admin'] } },
  { title: 'deny (seed rule): the audience is http://todoapi2.api', expect: '401 end_users_not_allowed', path: '/todos', token: { sub: 'alice', client: 'todo-web', aud: 'http://todoapi2.api', scope: 'read:todos', roles: ['editor'] } },
  { title: 'deny (seed rule): the token has no audience', expect: '401 end_users_not_allowed', path: '/todos', token: { sub: 'alice', client: 'todo-web', scope: 'read:todos', roles: ['editor'] } },
  { title: 'deny (seed rule): the application is CLIENT_ID', expect: '401 end_users_not_allowed', path: '/todos', token: { sub: 'alice', client: 'CLIENT_ID', aud: 'https://todo.api', scope: 'read:todos', roles: ['editor'] } },
  { title: 'deny (role grants): a user may read but not write', expect: '403 insufficient_scope', method: 'POST', path: '/todos', token: { sub: 'bob', client: 'todo-web', aud: 'https://todo.api', scope: 'read:todos write:todos', roles: ['user'] } },
  { title: 'deny (role grants): a role the policy does not name is granted nothing', expect: '403 insufficient_scope', path: '/todos', token: { sub: 'eve', client: 'todo-web', aud: 'https://todo.api', scope: 'read:todos', roles: ['intern'] } },
  { title: 'deny (application association): todo-cli is granted read:reports only', expect: '403 insufficient_scope', path: '/reports/export', method: 'POST', token: { sub: 'carol', client: 'todo-cli', aud: 'https://todo.api', scope: 'read:reports export:reports' } },
  { title: 'deny (location): /admin only from 10.0.0.0/8', expect: '401 end_users_not_allowed', path: '/admin/users', token: { sub: 'root', client: 'todo-web', aud: 'https://todo.api', scope: 'admin', roles: ['admin'] } },
  { title: 'deny: no token', expect: '401 unauthorized', path: '/todos' },
  { title: 'deny: an expired token', expect: '401 invalid_token', path: '/todos', token: { sub: 'alice', client: 'todo-web', aud: 'https://todo.api', scope: 'read:todos', roles: ['editor'], exp: -120 } },
  { title: 'deny: a forged signature', expect: '401 invalid_token', path: '/todos', rawToken: 'forged' },
  { title: 'deny: no route', expect: '404 no_route', path: '/nowhere' }
]

/** A word as a POSIX shell reads it: plain when it holds nothing the shell would interpret, else single-quoted. */
function shellWord (word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`
}

/** The config file as the user would type it: relative to the working directory when it lies below it. */
function configArgument (source: string): string {
  const below = relative(process.cwd(), source)
  return below !== '' && !below.startsWith('..') && !isAbsolute(below) ? below : source
}

/**
 * A ready-to-paste `scopegate explain` line for one of the demo's tokens. The demo config names the dev
 * issuer and the echo upstream by `SCOPEGATE_DEMO_*` variables that only this process sets, so the line
 * sets them inline: pasted into another terminal (a POSIX shell, in the repository), it explains the
 * running demo's own decision, signature check included, for as long as the demo runs.
 */
export async function explainExample (key: DemoKey, env: { issuer: string, upstream: string }, configFile: string): Promise<string> {
  const token = await mintDemoToken(key, EDITOR_READS)
  return [
    `SCOPEGATE_DEMO_ISSUER=${shellWord(env.issuer)}`,
    `SCOPEGATE_DEMO_UPSTREAM=${shellWord(env.upstream)}`,
    `npx scopegate explain --config ${shellWord(configArgument(configFile))} --method GET --path /todos --token ${token}`
  ].join(' ')
}

/** Ready-to-paste curl lines against `proxyUrl`, one allow and each kind of deny, with tokens signed by `key`. */
export async function curlExamples (key: DemoKey, proxyUrl: string): Promise<string[]> {
  const out: string[] = []
  for (const example of EXAMPLES) {
    let token = example.rawToken
    if (example.token !== undefined) token = await mintDemoToken(key, example.token)
    if (token === 'forged') token = (await mintDemoToken(key, { aud: 'https://todo.api', scope: 'read:todos', roles: ['editor'] })).replace(/.{8}$/, 'AAAAAAAA')
    const method = example.method === undefined ? '' : `-X ${example.method} `
    const auth = token === undefined ? '' : `-H "Authorization: Bearer ${token}" `
    out.push(`# ${example.title}  ->  ${example.expect}`)
    out.push(`curl -i ${method}${auth}${proxyUrl}${example.path}`, '')
  }
  return out
}

export async function runDemo (): Promise<void> {
  const issuer = await startDevIssuer()
  const upstream = await startEchoUpstream()
  process.env.SCOPEGATE_DEMO_ISSUER = issuer.url
  process.env.SCOPEGATE_DEMO_UPSTREAM = upstream.url
  const config = await loadConfig(process.env.SCOPEGATE_CONFIG ?? DEMO_CONFIG)
  // SCOPEGATE_LOG_FORMAT=json|pretty overrides the default: pretty on a terminal (JSON if pino-pretty is absent).
  const format = process.env.SCOPEGATE_LOG_FORMAT
  const logger = createLogger({
    level: (process.env.SCOPEGATE_LOG_LEVEL ?? config.server.logLevel) as 'info',
    pretty: format === undefined ? process.stdout.isTTY : format === 'pretty'
  })
  const gateway = new Gateway({ config, logger })
  const { proxyUrl, adminUrl } = await gateway.start()

  await saveDemoKey(issuer.key)

  const out: string[] = [
    '',
    `scopegate demo: proxy ${proxyUrl}, admin ${adminUrl}`,
    `  dev issuer ${issuer.url} (fresh ES256 key), echo upstream ${upstream.url}, config ${config.source}`,
    ''
  ]
  out.push(...await curlExamples(issuer.key, proxyUrl))
  out.push(`# readiness: curl ${adminUrl}/readyz`)
  out.push(`# explain the first allow, step by step: ${await explainExample(issuer.key, { issuer: issuer.url, upstream: upstream.url }, config.source)}`)
  out.push('# more tokens: npx scopegate token --sub alice --client todo-web --aud https://todo.api --scope "read:todos" --roles editor')
  out.push('# Ctrl-C to stop.', '')
  process.stdout.write(out.join('\n') + '\n')

  const stop = (): void => {
    void gateway.close().then(async () => {
      await Promise.all([issuer.close(), upstream.close()])
      process.exit(0)
    })
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
