/**
 * The status page in a real browser: Debian's chromium, headless, driven by puppeteer-core (it never
 * downloads a browser). The page renders the routes, issuers and denials under its own strict CSP (no
 * violation reported), shows a hostile client id as text, and a denial made after it loaded appears in
 * the table through the live feed. A screenshot goes to test/output/status-page.png; with
 * SCOPEGATE_DOCS_SCREENSHOT=1 also to docs/images/status-page.png, the one the docs show.
 */
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import puppeteer from 'puppeteer-core'
import t from 'tap'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/http.js'
import { mintToken } from '../helpers/jwks-server.js'

const CHROMIUM = '/usr/bin/chromium'
const AUD = 'https://todo.api'
const OUTPUT = fileURLToPath(new URL('../output/', import.meta.url))
const DOCS_IMAGE = fileURLToPath(new URL('../../docs/images/status-page.png', import.meta.url))
/** Milliseconds the browser gets to show what is expected: a bound, not a measurement. */
const WAIT_MS = 15_000

t.test('the status page in headless chromium', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (.ci/run installs the chromium package)` }, async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  const gw = await startGateway({
    server: { admin: { status: { enabled: true, recentDenials: 20 } } },
    issuers: [{ id: 'auth0', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [AUD] }],
    upstreams: { todo: { url: echo.url } },
    routes: [
      { id: 'todos-read', match: { path: '/todos', prefix: true, methods: ['GET'] }, upstream: 'todo', policy: { audience: { allow: [AUD] }, scopes: { require: ['read:todos'] } } },
      {
        id: 'todos-write',
        match: { path: '/todos', prefix: true, methods: ['POST', 'PUT', 'DELETE'] },
        upstream: 'todo',
        policy: { clients: { deny: ['legacy-cli'] }, grants: { roles: { admin: ['*'], editor: ['write:todos'] } }, scopes: { require: ['write:todos'] } }
      },
      { id: 'health', match: { path: '/health' }, upstream: 'todo', auth: 'none' }
    ]
  })
  t.teardown(() => gw.close())

  // A morning's worth of trouble before the page is opened.
  const mint = async (claims: Record<string, unknown>, expiresIn = 300): Promise<string> =>
    await mintToken(key, { iss: jwks.issuer, aud: AUD, ...claims }, { expiresIn, iat: Math.floor(Date.now() / 1000) - (expiresIn < 0 ? 600 : 0) })
  const expired = await mint({ sub: 'auth0|alice', client_id: 'todo-web', scope: 'read:todos' }, -60)
  const reader = await mint({ sub: 'auth0|bob', client_id: 'todo-web', scope: 'read:todos' })
  const legacy = await mint({ sub: 'auth0|carol', client_id: 'legacy-cli', scope: 'write:todos', roles: ['editor'] })
  const hostile = await mint({ sub: 'auth0|mallory', client_id: '<script>alert(1)</script>', scope: 'read:todos' })
  const requests: Array<[string, string, Record<string, string>, number]> = [
    ['GET', '/todos', bearer(expired), 401],
    ['GET', '/todos/1', bearer(expired), 401],
    ['GET', '/todos', {}, 401],
    ['POST', '/todos', bearer(reader), 403],
    ['DELETE', '/todos/7', bearer(legacy), 401],
    ['GET', '/todos', bearer(reader), 200],
    ['GET', '/todos/3', bearer(hostile), 200],
    ['GET', '/health', {}, 200],
    ['GET', '/todos?x=<b>', bearer(hostile.slice(0, -4) + 'AAAA'), 401]
  ]
  for (const [method, path, headers, status] of requests) {
    t.equal((await send(gw.proxyUrl, path, { method, headers })).status, status, `${method} ${path}: ${status}`)
  }
  t.equal(echo.received.length, 3, 'the upstream saw the three allowed requests only')

  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  await page.setViewport({ width: 1280, height: 900 })
  const console: string[] = []
  page.on('console', (message) => console.push(message.text()))
  page.on('pageerror', (err) => console.push(`page error: ${String(err)}`))

  const response = await page.goto(`${gw.adminUrl}/status`, { waitUntil: 'load', timeout: WAIT_MS })
  t.equal(response?.status(), 200)
  // Expressions as text: they run in the page, and this project's TypeScript has no DOM types.
  await page.waitForFunction("document.getElementById('live')?.textContent === 'live'", { timeout: WAIT_MS })
  t.pass('the live feed connected')

  const routes = await page.$$eval('section:nth-of-type(5) tbody tr td:first-child', (cells) => cells.map((c) => c.textContent))
  t.same(routes, ['todos-read', 'todos-write', 'health'], 'the routes, as compiled')
  const issuers = await page.$$eval('section:nth-of-type(3) tbody tr', (rows) => rows.map((r) => r.textContent ?? ''))
  t.equal(issuers.length, 1)
  t.match(issuers[0], /auth0/)
  t.match(issuers[0], key.kid, 'the kid in use')
  t.match(issuers[0], /ready/)
  const clients = await page.$$eval('#denials tr td:nth-child(7)', (cells) => cells.map((c) => c.textContent))
  t.ok(clients.includes('legacy-cli'), 'the denied client is listed')

  const before = await page.$$eval('#denials tr', (rows) => rows.length)
  t.equal((await send(gw.proxyUrl, '/todos/live-check', { headers: bearer(expired) })).status, 401)
  await page.waitForFunction("[...document.querySelectorAll('#denials tr td:nth-child(4)')].some((c) => c.textContent === '/todos/live-check')", { timeout: WAIT_MS })
  t.pass('the denial made after loading appeared in the table')
  t.equal(await page.$$eval('#denials tr', (rows) => rows.length), before + 1, 'one new row')
  const live = await page.$eval('#reasons tr[data-reason="token_expired"] td:nth-child(4)', (c) => c.textContent)
  t.equal(live, '1', 'the reason\'s live count went up')
  t.equal(await page.$eval('#sum-total', (b) => b.textContent), String(before + 1), 'so did the total')
  if (process.env.SCOPEGATE_DOCS_SCREENSHOT === '1') {
    await page.screenshot({ path: DOCS_IMAGE, fullPage: true })
    t.comment(`docs screenshot: ${DOCS_IMAGE}`)
  }

  // A hostile client id arriving live: the script builds cells with textContent, so it stays text.
  t.equal((await send(gw.proxyUrl, '/todos/9', { method: 'POST', headers: bearer(hostile) })).status, 403)
  await page.waitForFunction("[...document.querySelectorAll('#denials tr td:nth-child(7)')].some((c) => c.textContent === '<script>alert(1)</script>')", { timeout: WAIT_MS })
  t.pass('the hostile client id is shown as text')
  t.equal(await page.$('#denials script'), null, 'and never becomes an element')
  t.same(console.filter((line) => /Content Security Policy|Refused|error/i.test(line)), [], 'no CSP violation or script error')
  t.equal(echo.received.length, 3, 'the upstream saw nothing more')

  await mkdir(OUTPUT, { recursive: true })
  const shot = `${OUTPUT}status-page.png`
  await page.screenshot({ path: shot, fullPage: true })
  t.comment(`screenshot: ${shot}`)
})
