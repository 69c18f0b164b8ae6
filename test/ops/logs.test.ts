/**
 * Decision logs (docs/operations.md#decision-logs): one JSON line per decision with the documented fields and a stable reason
 * code; never a token or an Authorization header, whatever the client sends; the level follows
 * `server.logLevel` (also on reload); and the demo's pretty mode degrades to JSON lines when pino-pretty
 * is not installed (`npm ci --omit=dev`).
 */
import { spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { closedPort } from '../helpers/echo-upstream.js'
import { compileTestConfig, issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { makeKey, mintToken } from '../helpers/jwks-server.js'
import { ROOT, freePort, todosAndGone, waitFor } from './support.js'

const AUD = 'https://todo.api'

t.test('decision log lines', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const down = await closedPort()
  const config = todosAndGone(jwks, AUD, echo.url, down)
  const gw = await startGateway(config)
  t.teardown(() => gw.close())

  const good = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'alice', client_id: 'web', scope: 'read:todos write:todos' })
  const weak = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'bob', client_id: 'web', scope: 'write:todos' })
  const forged = good.slice(0, -10) + 'AAAAAAAAAA'
  const foreign = await mintToken(await makeKey('ES256'), { iss: jwks.issuer, aud: AUD, sub: 'mallory' })
  const expired = await mintToken(key, { iss: jwks.issuer, aud: AUD, sub: 'carol', scope: 'read:todos' }, { iat: Math.floor(Date.now() / 1000) - 3600, expiresIn: 60 })
  const garbage = 'not-a-jwt-but-a-secret-' + 'x'.repeat(40)
  const secrets = [good, weak, forged, foreign, expired, garbage]

  t.test('an allow carries every field of the contract', async (t) => {
    const before = gw.decisions().length
    const res = await send(gw.proxyUrl, '/todos/./1?page=2', { headers: bearer(good) })
    t.equal(res.status, 200)
    const line = gw.decisions()[before]
    t.match(line, {
      level: 30,
      msg: 'decision',
      route: 'todos',
      method: 'GET',
      path: '/todos/1',
      decision: 'allow',
      reason: 'allowed',
      upstream: 'todo',
      status: 200,
      upstreamStatus: 200,
      sub: 'alice',
      clientId: 'web',
      scopes: 'read:todos write:todos'
    })
    t.type(line?.latencyMs, 'number')
    t.equal(gw.decisions().length, before + 1, 'exactly one line for the request')
  })

  t.test('a deny carries its stable reason code, at warn level', async (t) => {
    const before = gw.decisions().length
    await send(gw.proxyUrl, '/todos', { headers: bearer(weak) })
    await send(gw.proxyUrl, '/todos')
    await send(gw.proxyUrl, '/nowhere')
    t.match(gw.decisions().slice(before), [
      { level: 40, route: 'todos', decision: 'deny', reason: 'scope_insufficient', status: 403, upstreamStatus: null, sub: 'bob', scopes: '' },
      { level: 40, route: 'todos', decision: 'deny', reason: 'token_missing', status: 401, sub: null },
      { level: 40, route: null, decision: 'deny', reason: 'no_route', status: 404 }
    ])
  })

  t.test('no log line ever holds a token or an Authorization header', async (t) => {
    const cases: Array<[string, string[] | Record<string, string>]> = [
      ['/todos', bearer(good)],
      ['/gone', bearer(good)], // allowed, then the upstream fails
      ['/todos', bearer(forged)],
      ['/todos', bearer(foreign)],
      ['/todos', bearer(expired)],
      ['/todos', bearer(garbage)],
      ['/todos', { authorization: `Basic ${garbage}` }],
      ['/todos', { authorization: `Bearer ${good} ${garbage}` }],
      ['/todos', ['authorization', `Bearer ${good}`, 'Authorization', `Bearer ${weak}`]],
      ['/nowhere', bearer(good)],
      [`/todos?access_token=${good}`, {}],
      ['/todos', { authorization: `Bearer ${forged}`, 'x-forwarded-authorization': `Bearer ${good}` }],
      ['/todos/%2F..', bearer(good)]
    ]
    for (const [path, headers] of cases) await send(gw.proxyUrl, path, { headers })
    const log = gw.rawLog()
    t.ok(gw.decisions().length >= cases.length, 'the requests were logged')
    for (const secret of secrets) {
      for (const part of secret.split('.').filter((p) => p.length >= 16)) {
        t.notOk(log.includes(part), `no part of a token is logged (${part.slice(0, 12)}…)`)
      }
    }
    t.notMatch(log, /bearer /i, 'no Authorization value is logged')
    t.notMatch(log, /"authorization"\s*:/i, 'no Authorization header is logged')
    t.notMatch(log, /access_token/, 'the query string is not logged')
  })

  t.test('the level follows server.logLevel, also on reload', async (t) => {
    gw.gateway.reload(compileTestConfig({ ...config, server: { logLevel: 'warn' } }))
    await gw.gateway.reissue.settled()
    let before = gw.decisions().length
    await send(gw.proxyUrl, '/todos', { headers: bearer(good) })
    await send(gw.proxyUrl, '/todos')
    t.match(gw.decisions().slice(before), [{ decision: 'deny', reason: 'token_missing' }], 'at warn, allows are not logged; denies are')
    t.equal(gw.decisions().length, before + 1)

    gw.gateway.reload(compileTestConfig(config))
    await gw.gateway.reissue.settled()
    before = gw.decisions().length
    await send(gw.proxyUrl, '/todos', { headers: bearer(good) })
    t.match(gw.decisions().slice(before), [{ decision: 'allow' }], 'back at info')
  })
})

/** Runs `scopegate demo` from `root` until its first decision line, and returns its stdout lines. */
async function demoOutput (t: Tap.Test, root: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  const [proxy, admin] = [await freePort(), await freePort()]
  const { SCOPEGATE_CONFIG: _ignored, ...inherited } = process.env
  const child = spawn(process.execPath, [join(root, 'dist/cli.js'), 'demo'], {
    cwd: root,
    env: { ...inherited, SCOPEGATE_PROXY_PORT: String(proxy), SCOPEGATE_ADMIN_PORT: String(admin), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  await waitFor('the demo to listen', () => out.includes('Ctrl-C to stop'), 20_000)
  const res = await send(`http://127.0.0.1:${proxy}`, '/todos')
  t.equal(res.status, 401)
  await waitFor('the decision line', () => /token_missing/.test(out), 5000)
  child.kill('SIGTERM')
  t.equal(await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), 15_000))]), 0, 'the demo exits 0 on SIGTERM')
  // eslint-disable-next-line no-control-regex
  return out.replace(/\u001b\[[0-9;]*m/g, '').split('\n')
}

declare namespace Tap { type Test = import('tap').Test }

t.test('pretty demo logs degrade to JSON lines without pino-pretty', async (t) => {
  // What `npm ci --omit=dev` leaves: the build and every dependency but the dev ones (pino-pretty among them).
  const root = await mkdtemp(join(tmpdir(), 'scopegate-omit-dev-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await cp(join(ROOT, 'dist'), join(root, 'dist'), { recursive: true })
  await cp(join(ROOT, 'config'), join(root, 'config'), { recursive: true })
  await cp(join(ROOT, 'package.json'), join(root, 'package.json'))
  await mkdir(join(root, 'node_modules'))
  for (const name of await readdir(join(ROOT, 'node_modules'))) {
    if (name === 'pino-pretty' || name === '.bin') continue
    await symlink(join(ROOT, 'node_modules', name), join(root, 'node_modules', name))
  }

  const lines = await demoOutput(t, root, { SCOPEGATE_LOG_FORMAT: 'pretty' })
  const json = lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
  t.ok(json.some((line) => line.msg === 'pino-pretty is not installed: logging JSON lines'), 'says why it logs JSON')
  t.ok(json.some((line) => line.msg === 'decision' && line.reason === 'token_missing'), 'the decision is a JSON line')
})

t.test('with pino-pretty installed, the demo logs human-readable lines', async (t) => {
  const lines = await demoOutput(t, ROOT, { SCOPEGATE_LOG_FORMAT: 'pretty' })
  // pino-pretty: `[time] WARN: decision` then one `key: value` line per field.
  t.ok(lines.some((line) => /WARN.*: decision/.test(line)), 'a pretty decision line')
  t.ok(lines.some((line) => /^\s+reason: "token_missing"/.test(line)), 'its fields, one per line')
  t.notOk(lines.some((line) => line.startsWith('{')), 'no JSON lines')
})
