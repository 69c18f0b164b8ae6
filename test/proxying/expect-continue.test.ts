/**
 * `Expect: 100-continue` (docs/proxying.md): the request is decided before any `100 Continue`. Allowed
 * uploads get the 100, stream upstream whole and bring back the upstream's answer; denied ones get their
 * answer at once, without a 100, and the upstream sees nothing. Any other expectation is 417. The client is
 * Debian's curl; odd expectations go over a raw socket.
 */
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { issuerAndEcho, startGateway } from '../helpers/gateway.js'
import { mintToken } from '../helpers/jwks-server.js'
import { rawExchange } from './raw-socket.js'

const API = 'https://upload.api'
const MiB = 1024 * 1024

interface CurlResult { status: number, verbose: string, body: string, exitCode: number }

/** curl as a real client: `-v` output is where a `100 Continue` shows. Bounded by --max-time. */
function curl (args: string[]): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '-v', '--max-time', '120', '-w', '\n%{http_code}', ...args],
      { maxBuffer: 16 * MiB }, (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
        if (code === -1) return reject(err)
        const cut = stdout.lastIndexOf('\n')
        resolve({ status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut), verbose: stderr, exitCode: code })
      })
  })
}

/** A file of `size` bytes (one random 64 KiB block repeated) and its SHA-256. */
function writeUpload (dir: string, size: number): { file: string, sha256: string } {
  const block = randomBytes(64 * 1024)
  const data = Buffer.alloc(size)
  for (let at = 0; at < size; at += block.length) block.copy(data, at)
  const file = join(dir, `upload-${size}.bin`)
  writeFileSync(file, data)
  return { file, sha256: createHash('sha256').update(data).digest('hex') }
}

t.test('uploads with and without Expect: 100-continue', async (t) => {
  const { key, jwks, echo } = await issuerAndEcho(t)
  echo.setMode('digest')
  const gw = await startGateway({
    issuers: [{ id: 'test', issuer: jwks.issuer, jwksUri: jwks.url, algorithms: ['ES256'], audiences: [API] }],
    upstreams: { echo: { url: echo.url } },
    routes: [{ id: 'upload', match: { path: '/upload', prefix: true }, upstream: 'echo' }]
  })
  t.teardown(() => gw.close())
  const token = await mintToken(key, { iss: jwks.issuer, aud: API, sub: 'alice' })

  const dir = mkdtempSync(join(tmpdir(), 'scopegate-expect-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const uploads = [writeUpload(dir, 2 * MiB), writeUpload(dir, 50 * MiB)]
  // curl's own Content-Type for --data-binary is application/x-www-form-urlencoded, as most uploads
  // from the command line are sent: the 2 MiB ones keep it (the form check streams them), the 50 MiB
  // ones are labelled as what they are.
  const labels = (size: string): string[] => size === '2 MiB' ? [] : ['-H', 'content-type: application/octet-stream']

  for (const { file, sha256 } of uploads) {
    const size = file.endsWith(`-${2 * MiB}.bin`) ? '2 MiB' : '50 MiB'
    for (const expect of [true, false]) {
      const expectArgs = expect ? ['-H', 'Expect: 100-continue'] : ['-H', 'Expect:']
      const shape = `${size}, ${expect ? 'with' : 'without'} Expect`

      t.test(`allowed, ${shape}: every byte reaches the upstream`, async (t) => {
        const before = echo.received.length
        const res = await curl(['-X', 'POST', '--data-binary', `@${file}`, ...labels(size), ...expectArgs,
          '-H', `authorization: Bearer ${token}`, `${gw.proxyUrl}/upload/${size.replace(' ', '')}`])
        t.equal(res.status, 200, 'the upstream\'s answer, not a 502')
        t.equal(res.verbose.includes('< HTTP/1.1 100 Continue'), expect, expect ? '100 Continue after the decision' : 'no 100 unasked')
        t.same(JSON.parse(res.body), { bytes: file.endsWith(`-${2 * MiB}.bin`) ? 2 * MiB : 50 * MiB, sha256 })
        t.equal(echo.received.length, before + 1)
        const seen = echo.received.at(-1)
        t.equal(seen?.sha256, sha256, 'the upstream received the file byte for byte')
        t.equal(seen?.headers.expect, undefined, 'Expect is between the client and scopegate: it never goes upstream')
      })

      t.test(`denied, ${shape}: answered at once, the upstream sees nothing`, async (t) => {
        const before = echo.received.length
        const res = await curl(['-X', 'POST', '--data-binary', `@${file}`, ...labels(size), ...expectArgs, `${gw.proxyUrl}/upload/x`])
        t.equal(res.status, 401)
        t.match(JSON.parse(res.body), { error: 'unauthorized' })
        t.notOk(res.verbose.includes('100 Continue'), 'no 100 Continue for a denied request')
        if (expect) t.match(res.verbose, /< connection: close/i, 'the body will not come: the connection is closed')
        else t.notMatch(res.verbose, /Send failure|reset/i, 'a body already under way is drained, not reset under the answer')
        t.equal(echo.received.length, before, 'no upstream request, so no byte of the body')
      })
    }
  }

  t.test('a denied Expect request over a raw socket: the final answer comes first, and the socket closes', async (t) => {
    const before = echo.received.length
    const answer = await rawExchange(gw.proxyUrl,
      'POST /upload/x HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 1048576\r\n\r\n')
    t.match(answer.text, /^HTTP\/1\.1 401 /, 'no 100 Continue before it')
    t.notMatch(answer.text, /100 Continue/)
    t.ok(answer.closed, 'the gateway closed the connection without waiting for the body')
    t.equal(echo.received.length, before)
  })

  t.test('any other expectation is 417 expectation_failed', async (t) => {
    for (const value of ['something-else', '200-ok', 'x=1']) {
      await t.test(value, async (t) => {
        const before = echo.received.length
        const answer = await rawExchange(gw.proxyUrl,
          `POST /upload/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\nExpect: ${value}\r\nContent-Length: 5\r\n\r\n`)
        t.match(answer.text, /^HTTP\/1\.1 417 /)
        t.same(answer.json, { error: 'expectation_failed', error_description: 'the only expectation supported is 100-continue' })
        t.equal(echo.received.length, before, 'the upstream saw nothing')
        t.match(gw.decisions().at(-1), { decision: 'deny', reason: 'expectation_unsupported', status: 417 })
      })
    }
  })
})
