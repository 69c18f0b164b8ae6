/**
 * The commands the demo and its config tell a user to run work as printed: `scopegate validate` on
 * `config/demo.yaml` with no `SCOPEGATE_DEMO_*` variables set, and the `scopegate explain` line that
 * `scopegate demo` prints, pasted into another shell in the repository while the demo runs.
 * `npm test` builds dist/ first.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CLI = join(ROOT, 'dist', 'cli.js')
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`)

t.setTimeout(240_000)

/** The environment of a fresh terminal: none of the variables the demo sets for itself. */
function freshEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SCOPEGATE_')) env[name] = value
  // npx resolves `scopegate` to this package's own bin; offline, so a mistake fails instead of downloading.
  return { ...env, npm_config_offline: 'true', npm_config_update_notifier: 'false', ...extra }
}

interface Result { code: number | null, stdout: string, stderr: string }

function collect (child: ChildProcess): Promise<Result> {
  return new Promise((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** A command line run by a POSIX shell in the repository, as a user pasting it would. */
function shell (line: string, env: NodeJS.ProcessEnv): Promise<Result> {
  return collect(spawn('/bin/sh', ['-c', line], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] }))
}

t.test('validate passes on config/demo.yaml as is, without the demo\'s variables', async (t) => {
  const result = await shell('node dist/cli.js validate --config config/demo.yaml', freshEnv())
  t.equal(result.code, 0, result.stderr)
  t.match(result.stdout, /^config\/demo\.yaml: ok: 1 issuer\(s\), 1 upstream\(s\), 5 route\(s\)\n$/)
  t.equal(result.stderr, '')
})

t.test('the explain line the demo prints works when pasted into another shell', async (t) => {
  // Its own temp dir, so the demo's key file does not replace one another test or user relies on.
  const tmp = await mkdtemp(join(tmpdir(), 'scopegate-demo-'))
  t.teardown(() => rm(tmp, { recursive: true, force: true }))
  const demo = spawn(process.execPath, [CLI, 'demo'], {
    cwd: ROOT,
    env: freshEnv({ TMPDIR: tmp, SCOPEGATE_PROXY_PORT: '0', SCOPEGATE_ADMIN_PORT: '0', SCOPEGATE_LOG_LEVEL: 'silent', SCOPEGATE_LOG_FORMAT: 'json' }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = collect(demo)
  t.teardown(async () => {
    if (demo.exitCode === null && demo.signalCode === null) demo.kill('SIGTERM')
    await exited
  })

  // The demo prints its lines once everything listens; bounded by a deadline, never a sleep.
  let printed = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`the demo printed no ready line within 120 s:\n${printed}`)) }, 120_000)
    demo.stdout.on('data', (chunk: Buffer) => {
      printed += chunk.toString('utf8')
      if (printed.includes('# Ctrl-C to stop.')) { clearTimeout(timer); resolve() }
    })
    demo.on('close', (code) => { clearTimeout(timer); reject(new Error(`the demo exited (${String(code)}) before it was ready:\n${printed}`)) })
  })

  const prefix = '# explain the first allow, step by step: '
  const line = printed.split('\n').find((l) => l.startsWith(prefix))?.slice(prefix.length)
  if (line === undefined) throw new Error(`no explain line in:\n${printed}`)
  t.match(line, /^SCOPEGATE_DEMO_ISSUER=http:\/\/127\.0\.0\.1:\d+ SCOPEGATE_DEMO_UPSTREAM=http:\/\/127\.0\.0\.1:\d+ npx scopegate explain --config config\/demo\.yaml --method GET --path \/todos --token [\w-]+\.[\w-]+\.[\w-]+$/,
    'variables set inline, the config as the user types it, a real token')

  const result = await shell(line, freshEnv())
  t.equal(result.code, 0, `exit 0 is an allow; stderr: ${result.stderr}`)
  t.match(result.stdout, /^route {5}todos-read /m, 'the route the demo gateway matches')
  t.match(result.stdout, /^token {5}verified: issuer demo, signature ok/m, 'the signature checked against the running dev issuer')
  t.match(result.stdout, /^narrow {4}\[read:todos write:todos delete:todos\] -> \[read:todos write:todos\]$/m)
  t.match(result.stdout, /^header {4}x-auth-scopes: read:todos write:todos$/m)
  t.match(result.stdout, /^decision {2}ALLOW$/m)

  // Without the inline variables the same command fails: the config would name another issuer.
  const bare = await shell(line.replace(/^(?:SCOPEGATE_DEMO_\w+=\S+ )+/, ''), freshEnv())
  t.equal(bare.code, 2, 'a deny: the token\'s issuer is not the default one')
  t.match(bare.stdout, /invalid_token/)

  demo.kill('SIGTERM')
  const stopped = await exited
  t.equal(stopped.code, 0, 'the demo stops cleanly on SIGTERM')
})
