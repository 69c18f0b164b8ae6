/**
 * The container files, checked without a Docker engine: the Dockerfile and docker-compose.yml are
 * parsed, and what they say is compared with the gateway itself: the listener ports and the config path
 * it defaults to, the health check (run against a live admin listener), the non-root user, the
 * multi-stage build, and every file either of them refers to (present, and not excluded by .dockerignore).
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { configPath, loadConfig } from '../../src/config/load.js'
import { startGateway, compileTestConfig } from '../helpers/gateway.js'
import { startEcho } from '../helpers/echo-upstream.js'
import { CLI, ROOT } from './support.js'

interface Instruction { keyword: string, args: string, stage: number }

/** Dockerfile instructions with continuation lines joined and comments dropped; `stage` counts FROMs. */
function parseDockerfile (text: string): { instructions: Instruction[], args: Map<string, string> } {
  const instructions: Instruction[] = []
  const args = new Map<string, string>()
  let stage = -1
  let pending = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (pending === '' && (line === '' || line.startsWith('#'))) continue
    if (line.startsWith('#')) continue
    if (line.endsWith('\\')) { pending += line.slice(0, -1) + ' '; continue }
    const full = (pending + line).trim()
    pending = ''
    const match = /^(\S+)\s*(.*)$/.exec(full)
    if (match === null) continue
    const keyword = (match[1] as string).toUpperCase()
    if (keyword === 'FROM') stage++
    if (keyword === 'ARG' && stage === -1) {
      const [name, value] = (match[2] as string).split('=')
      if (name !== undefined && value !== undefined) args.set(name, value)
    }
    instructions.push({ keyword, args: (match[2] as string).replace(/\s+/g, ' ').trim(), stage })
  }
  return { instructions, args }
}

/** The words of an exec-form (`["a", "b"]`) or shell-form argument. */
const words = (args: string): string[] => args.startsWith('[') ? JSON.parse(args) as string[] : args.split(' ')

/** .dockerignore patterns (top-level names only, as this repository writes them). */
function ignored (patterns: string[], path: string): boolean {
  const first = path.replace(/^\.\//, '').split('/')[0] ?? ''
  return patterns.some((pattern) => pattern === first || (pattern.startsWith('*') && first.endsWith(pattern.slice(1))))
}

const read = (file: string): string => readFileSync(join(ROOT, file), 'utf8')

t.test('container files agree with the gateway', async (t) => {
  const { instructions, args } = parseDockerfile(read('Dockerfile'))
  const dockerignore = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  // merge: compose files share blocks with `<<: *anchor`, as this one does for the image.
  const compose = parse(read('docker-compose.yml'), { merge: true }) as {
    services: Record<string, {
      image?: string,
      build?: { context: string, dockerfile: string },
      command?: string[],
      ports?: string[],
      environment?: Record<string, string>,
      volumes?: string[],
      network_mode?: string,
      depends_on?: Record<string, { condition: string }>,
      stop_grace_period?: string,
      healthcheck?: { test: string[] }
    }>
  }
  // What the gateway does when nothing says otherwise: the schema's defaults.
  const defaults = compileTestConfig({ upstreams: { u: { url: 'http://127.0.0.1:1' } }, routes: [{ id: 'r', match: { path: '/' }, upstream: 'u', auth: 'none' }] }).server
  const last = Math.max(...instructions.map((i) => i.stage))
  const stage = (n: number, keyword: string): Instruction[] => instructions.filter((i) => i.stage === n && i.keyword === keyword)
  const final = (keyword: string): Instruction[] => stage(last, keyword)
  const env = new Map(final('ENV').flatMap((i) => [...i.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1] as string, m[2] as string])))

  t.test('Dockerfile: multi-stage on a current Node LTS, npm ci, build, then --omit=dev', async (t) => {
    const froms = instructions.filter((i) => i.keyword === 'FROM').map((i) => i.args.replace(/\$\{(\w+)\}/g, (_, name: string) => args.get(name) ?? ''))
    t.ok(froms.length >= 2, 'at least two stages')
    for (const from of froms) t.match(from, /^node:(22|24)-bookworm-slim( AS \w+)?$/i, `${from}: an LTS Node image`)
    const build = froms.findIndex((f) => / AS build$/i.test(f))
    t.ok(build >= 0 && build < last, 'a build stage before the runtime stage')
    t.ok(stage(build, 'RUN').some((i) => /\bnpm ci\b/.test(i.args) && !/--omit=dev/.test(i.args)), 'build: npm ci with dev dependencies')
    t.ok(stage(build, 'RUN').some((i) => /npm run build/.test(i.args)), 'build: npm run build')
    t.ok(final('RUN').some((i) => /\bnpm ci\b.*--omit=dev/.test(i.args)), 'runtime: npm ci --omit=dev')
    t.ok(final('COPY').some((i) => /^--from=build \/app\/dist \.\/dist$/.test(i.args)), 'runtime: dist from the build stage')
  })

  t.test('Dockerfile: user, ports, config path, entrypoint', async (t) => {
    const user = final('USER').at(-1)?.args
    t.equal(user, 'node', 'runs as the official image\'s non-root user')
    t.not(user, 'root')
    const exposed = final('EXPOSE').flatMap((i) => i.args.split(' ')).map(Number)
    t.same(exposed.sort(), [defaults.proxy.port, defaults.admin.port].sort(), 'EXPOSE: the default proxy and admin ports')
    t.equal(env.get('SCOPEGATE_CONFIG'), '/etc/scopegate/scopegate.yaml')
    t.equal(configPath(undefined, { SCOPEGATE_CONFIG: env.get('SCOPEGATE_CONFIG') }), '/etc/scopegate/scopegate.yaml', 'serve reads that path')
    const defaultConfig = final('COPY').map((i) => i.args.split(' ')).find((w) => w.at(-1) === env.get('SCOPEGATE_CONFIG'))
    t.ok(defaultConfig, 'a config is copied to that path')
    const source = defaultConfig?.[0] ?? ''
    const config = await loadConfig(join(ROOT, source), {})
    const at = ({ host, port }: { host: string, port: number }): { host: string, port: number } => ({ host, port })
    t.same([at(config.server.proxy), at(config.server.admin)], [{ host: '0.0.0.0', port: defaults.proxy.port }, { host: '0.0.0.0', port: defaults.admin.port }],
      `${source} listens on the exposed ports, on every interface`)
    t.same(words(final('ENTRYPOINT').at(-1)?.args ?? ''), ['node', 'dist/cli.js'])
    t.same(words(final('CMD').at(-1)?.args ?? ''), ['serve'])
    const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string> }
    t.equal(pkg.bin.scopegate, 'dist/cli.js', 'the entrypoint is the package bin')
    t.ok(existsSync(join(ROOT, 'src/cli.ts')), 'which the build makes from src/cli.ts')
    t.equal(final('STOPSIGNAL').at(-1)?.args, 'SIGTERM')
  })

  t.test('Dockerfile: every file copied exists and is sent with the build context', async (t) => {
    for (const copy of instructions.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))) {
      const sources = copy.args.split(' ').slice(0, -1)
      for (const source of sources) {
        t.ok(existsSync(join(ROOT, source)), `${source} exists`)
        t.notOk(ignored(dockerignore, source), `${source} is not in .dockerignore`)
      }
    }
    for (const excluded of ['node_modules', 'dist', '.git']) t.ok(ignored(dockerignore, excluded), `.dockerignore leaves out ${excluded}`)
  })

  t.test('Dockerfile: the health check asks /healthz on the admin port, with node and no curl', async (t) => {
    const check = final('HEALTHCHECK').at(-1)?.args ?? ''
    const [, command] = /CMD (\[.*\])$/.exec(check) ?? []
    const argv = JSON.parse(command ?? '[]') as string[]
    t.equal(argv[0], 'node')
    t.notMatch(check, /curl|wget/)
    const script = argv[2] ?? ''
    const url = new URL(/'(http[^']+)'/.exec(script)?.[1] ?? 'http://invalid')
    t.equal(url.pathname, '/healthz')
    t.equal(Number(url.port), defaults.admin.port, 'the default admin port')

    // The very script, pointed at a live admin listener, then at a closed port.
    const echo = await startEcho()
    t.teardown(() => echo.close())
    const gw = await startGateway({ upstreams: { u: { url: echo.url } }, routes: [{ id: 'r', match: { path: '/' }, upstream: 'u', auth: 'none' }] })
    t.teardown(() => gw.close())
    // Asynchronously: the gateway answering it runs in this process.
    const run = (target: string): Promise<number | null> => new Promise((resolve) => {
      const child = spawn(process.execPath, ['-e', script.replace(url.origin, target)], { stdio: 'ignore', timeout: 10_000 })
      child.once('exit', (code) => resolve(code))
    })
    t.equal(await run(gw.adminUrl), 0, 'healthy against a running gateway')
    await gw.close()
    t.equal(await run(gw.adminUrl), 1, 'unhealthy when nothing answers')
  })

  t.test('docker-compose.yml: scopegate as a sidecar of the example API, with the dev issuer', async (t) => {
    const { scopegate, issuer } = compose.services
    const api = compose.services['todo-api']
    t.ok(scopegate && issuer && api, 'services scopegate, todo-api, issuer')
    if (!scopegate || !issuer || !api) return
    t.equal(scopegate.build?.context, '.')
    t.ok(existsSync(join(ROOT, scopegate.build?.dockerfile ?? '')), 'the Dockerfile it builds exists')
    t.equal(issuer.image, scopegate.image, 'the issuer runs the same image')

    t.equal(scopegate.network_mode, 'service:todo-api', 'a sidecar: the API\'s network namespace')
    const published = (api.ports ?? []).map((p) => p.split(':').map(Number))
    const [mount] = (scopegate.volumes ?? []).map((v) => v.split(':'))
    t.equal(mount?.[1], env.get('SCOPEGATE_CONFIG'), 'the config is mounted where the image reads it')
    t.equal(scopegate.environment?.SCOPEGATE_CONFIG, env.get('SCOPEGATE_CONFIG'))
    t.ok(existsSync(join(ROOT, mount?.[0] ?? '')), `${mount?.[0]} exists`)
    const config = await loadConfig(join(ROOT, mount?.[0] ?? ''), scopegate.environment ?? {})
    t.same(published.map((p) => p[1]).sort(), [config.server.proxy.port, config.server.admin.port].sort(), 'the proxy and admin ports are published')
    t.same([config.server.proxy.host, config.server.admin.host], ['0.0.0.0', '0.0.0.0'])

    // The API listens where the sidecar's upstream points.
    const upstream = new URL([...config.upstreams.values()][0]?.base ?? '')
    t.equal(upstream.hostname, '127.0.0.1', 'the sidecar reaches the API on loopback')
    t.ok((api.command ?? []).includes(`--port=${upstream.port}`), 'the API listens on that port')

    // The issuer names itself as the gateway's config expects, listens where it says, and is up first.
    const flag = (name: string): string | undefined => { const c = issuer.command ?? []; return c[c.indexOf(name) + 1] }
    t.equal(issuer.command?.[0], 'dev-issuer')
    const issuerUrl = new URL(flag('--url') ?? '')
    t.equal([...config.issuersById.values()][0]?.issuer, issuerUrl.href.replace(/\/$/, ''), 'the gateway trusts the issuer by the name it signs with')
    t.equal(issuerUrl.hostname, 'issuer', 'a compose service name')
    t.equal(flag('--port'), issuerUrl.port)
    t.equal(flag('--host'), '0.0.0.0')
    t.match(issuer.healthcheck?.test.join(' '), new RegExp(`127\\.0\\.0\\.1:${issuerUrl.port}/`), 'its health check probes its own port')
    t.same(scopegate.depends_on?.issuer, { condition: 'service_healthy' })
    t.equal(new URL(flag('--gateway') ?? '').port, String(published.find((p) => p[1] === config.server.proxy.port)?.[0]), 'its curl lines use the published proxy port')
    const usage = spawnSync(process.execPath, [CLI, 'help'], { encoding: 'utf8' }).stdout
    for (const name of ['dev-issuer', '--host', '--port', '--url', '--gateway']) t.match(usage, name, `the CLI knows ${name}`)

    t.ok(Number.parseInt(scopegate.stop_grace_period ?? '0', 10) * 1000 > config.server.shutdownTimeoutMs, 'Docker waits longer than the drain')
  })

  t.test('config/compose.yaml keeps the demo\'s rules', async (t) => {
    const demo = parse(read('config/demo.yaml')) as Record<string, unknown>
    const composed = parse(read('config/compose.yaml')) as Record<string, unknown>
    t.same(composed.routes, demo.routes, 'the same routes')
    t.same(composed.defaults, demo.defaults, 'the same default policy')
  })
})
