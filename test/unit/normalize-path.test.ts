import t from 'tap'
import { GatewayError } from '../../src/shared/errors.js'
import { joinUpstreamPath, normalizeTarget } from '../../src/request/normalize-path.js'

t.test('canonical targets pass through unchanged', async (t) => {
  const cases = [
    '/',
    '/todos',
    '/todos/',
    '/todos/42',
    '/v1.0/file.json',
    '/a/.well-known/x',
    '/a/...',
    '/a/..b/c..',
    "/a-b_c~d/!$&'()*+,=:@",
    '/~user',
    '/%C3%A9t%C3%A9'
  ]
  for (const raw of cases) {
    t.strictSame(normalizeTarget(raw), { path: raw, query: '' }, raw)
  }
})

t.test('paths are brought to one canonical form', async (t) => {
  const cases: Array<[raw: string, path: string]> = [
    // repeated slashes
    ['//a//b', '/a/b'],
    ['//', '/'],
    ['/a///', '/a/'],
    // dot segments
    ['/a/./b/../c', '/a/c'],
    ['/a/b/.', '/a/b/'],
    ['/a/b/..', '/a/'],
    ['/a/..', '/'],
    ['/a/b/./', '/a/b/'],
    ['/./a', '/a'],
    ['/a//..', '/'],
    // dot segments hidden behind escapes are still dot segments
    ['/a/%2e%2e/b', '/b'],
    ['/a/%2E%2e/b', '/b'],
    ['/a/.%2e/b', '/b'],
    ['/a/%2e/b', '/a/b'],
    ['/a/b/%2e%2e', '/a/'],
    // only unreserved characters are decoded
    ['/%7Euser', '/~user'],
    ['/%7euser', '/~user'],
    ['/%41%42', '/AB'],
    ['/%61%2D%5F%2e%30', '/a-_.0'],
    // other escapes stay escaped, in upper-case hex
    ['/a%3ab', '/a%3Ab'],
    ['/a%3Bb', '/a%3Bb'],
    ['/%c3%a9', '/%C3%A9'],
    ['/a%20b', '/a%20b'],
    ['/a%25b', '/a%25b'],
    ['/a%3Fb', '/a%3Fb'],
    // matrix parameters are dropped, before dot segments are resolved
    ['/a;jsessionid=1/b', '/a/b'],
    ['/a;x=1;y=2', '/a'],
    ['/a/;x/b', '/a/b'],
    ['/a/b;x', '/a/b'],
    ['/a/b/;x', '/a/b/'],
    ['/a/..;/admin', '/admin'],
    ['/a/..;x=1/admin', '/admin'],
    ['/a/.;/b', '/a/b'],
    ['/a/%2e%2e;/admin', '/admin'],
    // printable characters a path may not hold raw are encoded
    ['/a|b', '/a%7Cb'],
    ['/a{b}', '/a%7Bb%7D'],
    ['/a"<>`^[]', '/a%22%3C%3E%60%5E%5B%5D'],
    ['/a|b/..', '/']
  ]
  for (const [raw, path] of cases) {
    t.strictSame(normalizeTarget(raw), { path, query: '' }, raw)
  }
})

t.test('unsafe paths are refused with 400 invalid_request', async (t) => {
  const cases: Array<[raw: string, why: string]> = [
    // encoded slash and backslash
    ['/todos%2F..%2Fadmin', 'encoded slash'],
    ['/todos/..%2fadmin', 'encoded slash'],
    ['/a%2fb', 'encoded slash'],
    ['/a%5c..%5cb', 'encoded backslash'],
    ['/a%5Cb', 'encoded backslash'],
    // NUL and control characters, raw or encoded
    ['/%00', 'encoded NUL'],
    ['/a%00.json', 'encoded NUL'],
    ['/a\u0000b', 'raw NUL'],
    ['/a%0d%0aSet-Cookie:x', 'encoded CR LF'],
    ['/a%7f', 'encoded DEL'],
    ['/a\tb', 'raw tab'],
    ['/a\u007fb', 'raw DEL'],
    ['/a;%00', 'NUL inside a dropped parameter'],
    // backslash, space, non-ASCII, fragment
    ['/a\\b', 'backslash'],
    ['/a\\..\\b', 'backslash traversal'],
    ['/a b', 'space'],
    ['/caf\u00e9', 'raw latin1'],
    ['/\u00ff', 'raw latin1'],
    ['/a#frag', 'fragment'],
    // malformed escapes
    ['/%', 'lone %'],
    ['/a%4', 'short escape'],
    ['/a%G1', 'non-hex escape'],
    ['/a%1G', 'non-hex escape'],
    ['/a%%41', 'double %'],
    // double-encoded dot, slash and backslash: one decoding away from path syntax (Traefik GHSA-vrch-868g-9jx5)
    ['/a%252e%252e', 'double-encoded dot-dot'],
    ['/a/x%252f..%252fadmin', 'double-encoded slash'],
    ['/a/x%252F', 'double-encoded slash, upper-case hex'],
    ['/a/x%255cadmin', 'double-encoded backslash'],
    ['/a/%252E', 'double-encoded dot'],
    // climbing above the root
    ['/..', 'dot-dot at the root'],
    ['/../a', 'dot-dot at the root'],
    ['/a/../..', 'dot-dot above the root'],
    ['/a/%2E%2e/%2e%2e/%2e%2e', 'encoded dot-dot above the root'],
    ['/%2e%2e', 'encoded dot-dot at the root'],
    ['/..;/admin', 'dot-dot with parameters at the root'],
    ['//../a', 'dot-dot after merged slashes'],
    // not a path
    ['*', 'asterisk-form'],
    ['', 'empty'],
    ['a/b', 'relative'],
    ['example.com:443', 'authority-form'],
    ['ftp://host/a', 'other scheme'],
    ['http://host#x', 'fragment after authority'],
    ['http://host/../a', 'absolute-form is checked too']
  ]
  const descriptions = new Set<string>()
  for (const [raw, why] of cases) {
    let thrown: unknown
    try {
      normalizeTarget(raw)
    } catch (err) {
      thrown = err
    }
    t.ok(thrown instanceof GatewayError, `${why}: ${JSON.stringify(raw)} throws a GatewayError`)
    if (!(thrown instanceof GatewayError)) continue
    t.match(thrown, { status: 400, code: 'invalid_request', reason: 'path_invalid' }, why)
    t.type(thrown.detail, 'string', `${why}: the log gets a detail`)
    descriptions.add(thrown.description)
  }
  t.equal(descriptions.size, 1, 'every rejection has the same fixed public description')
  const [description] = [...descriptions]
  t.notMatch(description ?? '', /[/%\\]/, 'the description echoes no part of a path')
})

t.test('t.throws agrees on the error shape', async (t) => {
  t.throws(() => normalizeTarget('/a/%2e%2e/%2e%2e'), { status: 400, code: 'invalid_request' })
  t.throws(() => normalizeTarget('*'), { status: 400, code: 'invalid_request' })
})

t.test('the query string passes through byte for byte', async (t) => {
  const cases: Array<[raw: string, path: string, query: string]> = [
    ['/a?x=1', '/a', '?x=1'],
    ['/a?', '/a', '?'],
    ['/a?x=%2F..%2F&y=../../etc', '/a', '?x=%2F..%2F&y=../../etc'],
    ['/a?p=/b//c/./d', '/a', '?p=/b//c/./d'],
    ['/a?x=%2f%00%zz', '/a', '?x=%2f%00%zz'],
    ['/a?x=1?y=2#f', '/a', '?x=1?y=2#f'],
    ['/a/%2e%2e/b?x=%2e%2e', '/b', '?x=%2e%2e'],
    ['/a;p=1?q;r', '/a', '?q;r'],
    ['/?\\', '/', '?\\'],
    ['//a//b?//', '/a/b', '?//']
  ]
  for (const [raw, path, query] of cases) {
    t.strictSame(normalizeTarget(raw), { path, query }, raw)
  }
})

t.test('absolute-form takes the path and query, ignoring the authority', async (t) => {
  const cases: Array<[raw: string, path: string, query: string]> = [
    ['http://host/a?x', '/a', '?x'],
    ['http://host/a/b/', '/a/b/', ''],
    ['HTTPS://host:8443/a//b', '/a/b', ''],
    ['http://user@host/a/%2e%2e/b?y=%2F', '/b', '?y=%2F'],
    ['http://host', '/', ''],
    ['http://host?x=1', '/', '?x=1'],
    ['http://[::1]:8080/a', '/a', '']
  ]
  for (const [raw, path, query] of cases) {
    t.strictSame(normalizeTarget(raw), { path, query }, raw)
  }
})

t.test('normalizing is idempotent', async (t) => {
  const raws = ['//a//b', '/a/./b/../c', '/%41%42', '/a;x/b/', '/a|b', '/%c3%a9/%7e', '/a/..;/admin', '/a/b/.']
  for (const raw of raws) {
    const once = normalizeTarget(raw).path
    t.equal(normalizeTarget(once).path, once, raw)
  }
})

t.test('joinUpstreamPath builds the upstream path', async (t) => {
  const cases: Array<[base: string, routePath: string, path: string, strip: boolean, expected: string]> = [
    // no stripping: base + path
    ['', '/todos', '/todos/1', false, '/todos/1'],
    ['/api', '/todos', '/todos/1', false, '/api/todos/1'],
    ['/api', '/todos', '/todos', false, '/api/todos'],
    ['/api/', '/todos', '/todos', false, '/api/todos'],
    // stripping is segment-aware and keeps the leading slash
    ['', '/todos', '/todos', true, '/'],
    ['', '/todos', '/todos/', true, '/'],
    ['', '/todos', '/todos/1', true, '/1'],
    ['', '/todos', '/todos/1/done/', true, '/1/done/'],
    ['', '/todos/', '/todos/1', true, '/1'],
    ['/api', '/todos', '/todos', true, '/api'],
    ['/api', '/todos', '/todos/', true, '/api/'],
    ['/api', '/todos', '/todos/1', true, '/api/1'],
    ['/api', '/a/b', '/a/b/c', true, '/api/c'],
    // a `/` route strips nothing
    ['', '/', '/x/y', true, '/x/y'],
    ['/api', '/', '/', true, '/api/'],
    ['', '/', '/', true, '/']
  ]
  for (const [base, routePath, path, strip, expected] of cases) {
    t.equal(joinUpstreamPath(base, routePath, path, strip), expected,
      `${JSON.stringify(base)} + ${path} (route ${routePath}, strip ${String(strip)})`)
  }
})

t.test('joinUpstreamPath refuses a path outside the route prefix', async (t) => {
  t.throws(() => joinUpstreamPath('', '/todos', '/todosx', true), /not under the route prefix/)
  t.throws(() => joinUpstreamPath('', '/todos', '/other', true), /not under the route prefix/)
  t.equal(joinUpstreamPath('', '/todos', '/todosx', false), '/todosx', 'without stripping, no prefix check')
})

t.test('random targets: the result is canonical and stable, or the target is refused', async (t) => {
  // Deterministic PRNG (mulberry32), so a failure names a reproducible input.
  let seed = 0x5c09e6a7
  const random = (): number => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  const pieces = ['/', '/', '//', '.', '..', '%2e', '%2E', '%2f', '%5c', '%41', '%7e', '%3a', '%25', '%', ';', ';x=1',
    'a', 'b', 'todos', '~', '-', '|', '\\', ' ', '%00', '%0a', '\u00e9', '#', '@', ':']
  let refused = 0
  for (let n = 0; n < 5000; n++) {
    let raw = '/'
    const length = 1 + Math.floor(random() * 8)
    for (let i = 0; i < length; i++) raw += pieces[Math.floor(random() * pieces.length)] as string
    let path: string
    try {
      path = normalizeTarget(raw).path
    } catch (err) {
      if (!(err instanceof GatewayError) || err.status !== 400) t.fail(`${JSON.stringify(raw)}: ${String(err)}`)
      refused++
      continue
    }
    const problem =
      !path.startsWith('/')
        ? 'no leading slash'
        : path.includes('//')
          ? 'repeated slash'
          : /(?:^|\/)\.\.?(?:\/|$)/.test(path)
            ? 'dot segment'
            // eslint-disable-next-line no-control-regex -- control characters are what this row looks for
            : /[;\\\s#\u0000-\u001f\u007f-\uffff]/.test(path)
              ? 'forbidden character'
              : /%(?![0-9A-F]{2})/.test(path)
                ? 'escape not in upper-case hex'
                : /%(?:2F|5C|00|2E|41|7E)/.test(path)
                  ? 'escape that must be decoded or refused'
                  : normalizeTarget(path).path !== path
                    ? 'not stable'
                    : null
    if (problem !== null) t.fail(`${JSON.stringify(raw)} -> ${JSON.stringify(path)}: ${problem}`)
  }
  t.ok(refused > 0 && refused < 5000, `both outcomes exercised (${refused} refused)`)
})
