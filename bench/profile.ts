/**
 * `npm run bench:profile`: runs scopegate under `--cpu-prof` with one hot token for a fixed time, then
 * prints the functions with the most self time (`npm run bench:profile -- hot|distinct|invalid|none`). Used to remove work from the hot path.
 * `ingress-hot|ingress-invalid|ingress-none`: the same load through nginx `auth_request` (nginx-ingress.ts,
 * no decision cache), so the profile is of the admin listener's `/decisions`.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { benchConfig, benchClaims, ingressBenchConfig } from './config.js'
import { findNginx, startNginxIngress } from './nginx-ingress.js'
import { ROOT, pinSelf, startGateway, startUpstream } from './processes.js'
import { startIssuer } from './tokens.js'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount: number }

const scenario = process.argv[2] ?? 'hot'
const issuer = await startIssuer()
pinSelf(0)
const upstream = await startUpstream(0)
const dir = join(ROOT, 'bench-dist', 'profiles')
mkdirSync(dir, { recursive: true })
for (const file of readdirSync(dir)) if (file.endsWith('.cpuprofile')) writeFileSync(join(dir, file), '')
const ingressMode = scenario.startsWith('ingress-')
const config = ingressMode ? ingressBenchConfig : benchConfig
const gateway = await startGateway('profile-config', (port, adminPort) => config(issuer.url, upstream.url, port, adminPort), 1, ['--cpu-prof', `--cpu-prof-dir=${dir}`])
const nginxBinary = ingressMode ? findNginx() : null
if (ingressMode && nginxBinary === null) throw new Error('nginx is not installed: the ingress scenarios need it')
const nginx = nginxBinary === null ? null : await startNginxIngress(nginxBinary, upstream.url.replace(/\/$/, ''), gateway.url, 1)
const port = nginx === null ? gateway.port : nginx.plain
const kind = scenario.replace(/^ingress-/, '')
// Scenarios: hot (one valid token), distinct (a new ES256 token on every request: first sights only),
// invalid (bad signatures), none (no token).
const tokens = kind === 'hot'
  ? [issuer.mint('RS256', benchClaims(0))]
  : kind === 'none'
    ? []
    : kind === 'distinct'
      ? Array.from({ length: 60_000 }, (_, i) => issuer.mint('ES256', benchClaims(i)))
      : Array.from({ length: 1000 }, (_, i) => issuer.mint('RS256', benchClaims(i)).replace(/.{6}$/, 'AAAAAA'))
let i = 0
const result = await autocannon({
  url: `http://127.0.0.1:${port}/api/todos`,
  connections: 50,
  duration: 10,
  requests: [{
    setupRequest: (request: autocannon.Request) => tokens.length === 0
      ? request
      : ({ ...request, headers: { ...request.headers, authorization: `Bearer ${tokens[i++ % tokens.length] ?? ''}` } })
  }]
})
process.stdout.write(`${scenario}: ${result.requests.average.toFixed(0)} req/s\n`)
await nginx?.stop()
await gateway.stop()
await upstream.stop()
await issuer.close()

const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile') && readFileSync(join(dir, f)).length > 0)
if (file === undefined) throw new Error('no profile written')
const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: ProfileNode[] }
const self = new Map<string, number>()
let total = 0
for (const node of profile.nodes) {
  const { functionName, url, lineNumber } = node.callFrame
  const where = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')
  const key = `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`
  self.set(key, (self.get(key) ?? 0) + node.hitCount)
  total += node.hitCount
}
const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.PROFILE_TOP ?? 40))
for (const [name, hits] of top) process.stdout.write(`${((hits / total) * 100).toFixed(1).padStart(5)}%  ${name}\n`)
process.stdout.write(`profile: ${join(dir, file)}\n`)
