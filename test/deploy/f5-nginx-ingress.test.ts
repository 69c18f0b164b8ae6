/**
 * The F5 NGINX Ingress Controller variant (deploy/kubernetes/f5-nginx-ingress) on a real nginx. There is
 * no controller here, so the test writes the two locations F5's controller (v5.5.0, its Ingress template
 * and ExternalAuth policy) generates for this Ingress and Policy: the app's location with `auth_request`
 * and the Ingress's `nginx.org/location-snippets`, and the internal auth location proxying to
 * `authURI` with the headers the template always sets and the Policy's `authSnippets`. The snippets are
 * read from the manifests, so the test runs what the repository ships. Then: the probe says protected;
 * a good token reaches the app with scopegate's identity headers, never the client's; the method is
 * judged as sent; and without the snippets (a controller without -enable-snippets) every request is
 * refused rather than let through.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import type { Echo } from '../helpers/echo-upstream.js'
import { nginxAndGateway } from '../forward-auth/nginx-and-gateway.js'
import { send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'
import { freePort, startNginx } from '../forward-auth/nginx-process.js'

type Obj = Record<string, any>

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`)
t.setTimeout(240_000)

const DIR = fileURLToPath(new URL('../../deploy/kubernetes/f5-nginx-ingress/', import.meta.url))
const manifest = (file: string): Obj => parseAllDocuments(readFileSync(join(DIR, file), 'utf8'))[0]?.toJS() as Obj
const policy = manifest('policy.yaml').spec.externalAuth as Obj
const ingress = manifest('ingress.yaml')
const indent = (text: string): string => text.trim().split('\n').map((l) => `      ${l.trim()}`).join('\n')
const API = 'https://todo.api'

/** The server block F5's controller renders for the Ingress, with or without the snippets. */
function server (port: number, admin: string, upstream: string, snippets: boolean): string {
  const authPath = `/_external_auth${policy.authURI as string}`
  return `
  server {
    listen 127.0.0.1:${port};
    location / {
      auth_request ${authPath};
${snippets ? indent(ingress.metadata.annotations['nginx.org/location-snippets']) : ''}
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_pass ${upstream};
    }
    location ${authPath} {
      internal;
${snippets ? indent(policy.authSnippets) : ''}
      proxy_pass_request_body off;
      proxy_set_header Content-Length "0";
      proxy_set_header X-Scheme "$scheme";
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_pass ${admin}${policy.authURI as string};
    }
  }`
}

function probe (url: string, issuer: string): Promise<{ code: number | null, stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'probe', url, '--issuer', issuer, '--audience', API, '--timeout', '20s'], { stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout }))
  })
}

async function seenBy<T> (echo: Echo, run: () => Promise<T>): Promise<{ result: T, seen: Echo['received'] }> {
  const before = echo.received.length
  const result = await run()
  return { result, seen: echo.received.slice(before) }
}

t.test('F5 NGINX Ingress Controller: ExternalAuth policy with the snippets of deploy/kubernetes/f5-nginx-ingress', async (t) => {
  const started = await nginxAndGateway(t, API, {
    routes: [
      { id: 'todos-read', match: { path: '/todos', prefix: true, methods: ['GET'] }, upstream: 'todo', policy: { scopes: { require: ['read:todos'] } } },
      { id: 'todos-write', match: { path: '/todos', prefix: true, methods: ['POST'] }, upstream: 'todo', policy: { scopes: { require: ['write:todos'] } } }
    ]
  })
  if (started === null) return
  const { nginx, key, jwks, echo, gw } = started
  const [withSnippets, withoutSnippets] = [await freePort(), await freePort()]
  const running = await startNginx(nginx, t.testdir({}), [
    server(withSnippets, gw.adminUrl, echo.url, true),
    server(withoutSnippets, gw.adminUrl, echo.url, false)
  ].join('\n'), withSnippets)
  t.teardown(() => running.stop())
  const reader = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice', client_id: 'todo-web', scope: 'read:todos' })

  const probed = await seenBy(echo, () => probe(`http://127.0.0.1:${withSnippets}/todos`, jwks.issuer))
  t.equal(probed.result.code, 0, 'the probe: protected')
  t.match(probed.result.stdout, /^protected: all \d+ hostile requests were refused$/m)
  t.same(probed.seen, [], 'the app received none of the hostile requests')

  const forged = { 'x-auth-subject': 'root', 'x-auth-scopes': 'admin', 'x-auth-roles': 'admin', 'x-auth-route': 'admin', 'x-auth-client-id': 'evil', 'x-auth-issuer': 'https://evil' }
  const allowed = await seenBy(echo, () => send(`http://127.0.0.1:${withSnippets}`, '/todos/1?x=1', { headers: { authorization: `Bearer ${reader}`, ...forged } }))
  t.equal(allowed.result.status, 200, 'a good token: 200')
  t.equal(allowed.seen.length, 1)
  t.equal(allowed.seen[0]?.url, '/todos/1?x=1', 'the app got the request scopegate judged')
  t.match(allowed.seen[0]?.headers, { 'x-auth-subject': 'alice', 'x-auth-client-id': 'todo-web', 'x-auth-scopes': 'read:todos', 'x-auth-issuer': jwks.issuer, 'x-auth-route': 'todos-read' },
    'scopegate\'s identity headers, replacing the client\'s')
  t.notOk(allowed.seen[0]?.headers['x-auth-roles'], 'an identity header scopegate left empty is dropped, not the client\'s copy')
  t.match(gw.decisions().at(-1), { method: 'GET', path: '/todos/1', decision: 'allow' })

  const write = await seenBy(echo, () => send(`http://127.0.0.1:${withSnippets}`, '/todos', { method: 'POST', headers: { authorization: `Bearer ${reader}` }, body: '{}' }))
  t.equal(write.result.status, 403, 'POST with a read-only token: 403, the method is judged as sent (X-Original-Method)')
  t.same(write.seen, [], 'the app received nothing')
  t.match(gw.decisions().at(-1), { method: 'POST', path: '/todos', decision: 'deny' })

  const bare = await seenBy(echo, () => send(`http://127.0.0.1:${withoutSnippets}`, '/todos', { headers: { authorization: `Bearer ${reader}` } }))
  t.equal(bare.result.status, 403, 'without the snippets, even a good token is refused: the call names no request')
  t.same(bare.seen, [], 'and the app received nothing')
})
