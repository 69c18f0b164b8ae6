/**
 * Every YAML config block in README.md and docs/*.md loads with the real loader, so the docs cannot
 * drift from the schema and the compiler again. The rule, also stated in docs/README.md:
 *
 * - every fenced ```yaml block is checked, unless the line before it (blank lines aside) is the HTML
 *   comment `<!-- not-config -->`: Kubernetes manifests, Envoy fragments and the like carry that mark;
 * - a block whose top-level keys are all top-level config keys (`server`, `issuers`, `upstreams`,
 *   `reissue`, `defaults`, `routes`) is a config, or part of one: it is laid over a minimal base (one
 *   issuer `auth0`, one upstream `todo`, one route), key by key, with its upstreams added to the base's;
 * - a block whose top-level keys are all route keys (`match`, `policy`, `forward`, …) is one route of
 *   the base config;
 * - anything else is an error: fix the block, or mark it if it is not scopegate config.
 *
 * The result goes through `parseConfigText` and `compileConfig` with an empty environment, exactly as
 * `scopegate validate` would (key files named by `reissue.keys` are not read; listener TLS files are, and
 * only their absence is forgiven, as the docs name files of the reader's machine). The config/*.yaml files
 * are loaded as they are, with their `${VAR:-default}` defaults.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse, stringify } from 'yaml'
import { compileConfig } from '../../src/config/compile.js'
import { parseConfigText } from '../../src/config/parse.js'
import { problemsOf } from '../../src/config/problems.js'
import { configSchema } from '../../src/config/schema.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

const NOT_CONFIG = '<!-- not-config -->'
// Read from the schema, so a new top-level section is known here the day it is added.
const CONFIG_KEYS = new Set(Object.keys((configSchema as { properties: Record<string, unknown> }).properties))
const ROUTE_KEYS = new Set(['id', 'match', 'upstream', 'stripPrefix', 'auth', 'mode', 'policy', 'forward', 'rateLimit', 'cors', 'requireDpop', 'requireCertificateBinding', 'forwardAuth'])

const BASE = {
  issuers: [{
    id: 'auth0',
    issuer: 'https://tenant.example.com/',
    jwksUri: 'https://tenant.example.com/.well-known/jwks.json',
    algorithms: ['RS256'],
    audiences: ['https://todo.api']
  }],
  upstreams: { todo: { url: 'http://127.0.0.1:3000' } },
  routes: [{ id: 'base', match: { path: '/base' }, upstream: 'todo' }]
}

interface Block {
  /** `README.md:61`: the file and the line of the opening fence. */
  where: string
  text: string
  marked: boolean
}

/** The fenced ```yaml blocks of a Markdown text, dedented by their fence's indentation. */
function yamlBlocks (markdown: string, file: string): Block[] {
  const lines = markdown.split('\n')
  const blocks: Block[] = []
  let previous = ''
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? ''
    const fence = /^(\s*)```yaml\s*$/.exec(line)
    if (fence === null) {
      if (line.trim() !== '') previous = line.trim()
      continue
    }
    const indent = fence[1]?.length ?? 0
    const body: string[] = []
    let j = i + 1
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j] ?? ''); j++) body.push((lines[j] ?? '').slice(indent))
    blocks.push({ where: `${file}:${i + 1}`, text: body.join('\n'), marked: previous === NOT_CONFIG })
    previous = ''
    i = j
  }
  return blocks
}

/** What is wrong with a block, one `path: message` line per problem; empty when it loads. */
function blockProblems (block: Block): string[] {
  let tree: unknown
  try {
    tree = parse(block.text)
  } catch (err) {
    return [`YAML syntax error: ${(err as Error).message.split('\n')[0] ?? ''}`]
  }
  if (typeof tree !== 'object' || tree === null || Array.isArray(tree)) {
    return [`not a mapping: fix it, or put ${NOT_CONFIG} before it if it is not scopegate config`]
  }
  const fragment = tree as Record<string, unknown>
  const keys = Object.keys(fragment)
  let config: Record<string, unknown>
  if (keys.length > 0 && keys.every((key) => CONFIG_KEYS.has(key))) {
    const upstreams = { ...BASE.upstreams, ...(fragment.upstreams as Record<string, unknown> | undefined) }
    config = { ...BASE, ...fragment, upstreams }
  } else if (keys.length > 0 && keys.every((key) => ROUTE_KEYS.has(key))) {
    config = { ...BASE, routes: [{ ...BASE.routes[0], ...fragment }] }
  } else {
    return [`top-level keys ${keys.join(', ')} make neither a config nor a route: fix it, or put ${NOT_CONFIG} before it if it is not scopegate config`]
  }
  try {
    compileConfig(parseConfigText(stringify(config), block.where, {}), block.where)
    return []
  } catch (err) {
    return problemsOf(err)
      .filter((p) => !(/^server\.(proxy|admin|extAuthz)\.tls\.(cert|key|clientCa)$/.test(p.path) && p.message === 'cannot be read (ENOENT)'))
      .map((p) => p.path === '' ? p.message : `${p.path}: ${p.message}`)
  }
}

const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]

t.test('every YAML config block in README.md and docs/*.md loads', async (t) => {
  let checked = 0
  for (const file of DOCS) {
    for (const block of yamlBlocks(readFileSync(join(ROOT, file), 'utf8'), file)) {
      if (block.marked) continue
      checked++
      t.same(blockProblems(block), [], `${block.where} loads`)
    }
  }
  // The README's seed rules, docs/config.md's examples and docs/reissue.md's config at least.
  t.ok(checked >= 5, `${checked} blocks checked`)
})

t.test('config/*.yaml load as they are, with their defaults', async (t) => {
  // `*.cases.yaml` are cases files for `scopegate test`, checked by test/cli/policy-test.test.ts.
  const files = readdirSync(join(ROOT, 'config')).filter((f) => f.endsWith('.yaml') && !f.endsWith('.cases.yaml')).sort()
  t.ok(files.includes('demo.yaml') && files.includes('scopegate.yaml'))
  for (const file of files) {
    const text = readFileSync(join(ROOT, 'config', file), 'utf8')
    let problems: string[] = []
    try {
      compileConfig(parseConfigText(text, `config/${file}`, {}), `config/${file}`)
    } catch (err) {
      problems = problemsOf(err).map((p) => `${p.path}: ${p.message}`)
    }
    t.same(problems, [], `config/${file} loads`)
  }
})

t.test('the checker fails on a broken block and skips only marked ones', async (t) => {
  const markdown = [
    'A route that names an upstream nobody defined, and a misspelt key:',
    '',
    '```yaml',
    'routes:',
    '  - id: todos',
    '    match: { path: /todos, prefix: true }',
    '    upstream: nowhere',
    '    auth: maybe',
    '```',
    '',
    'A route fragment with a bad policy key:',
    '',
    '  ```yaml',
    '  policy:',
    '    scopes: { require: [read:todos], match: some }',
    '  ```',
    '',
    'A manifest, unmarked:',
    '',
    '```yaml',
    'apiVersion: v1',
    'kind: ConfigMap',
    '```',
    '',
    NOT_CONFIG,
    '',
    '```yaml',
    'apiVersion: v1',
    '```',
    '',
    '```yaml',
    'routes: [ {',
    '```',
    '',
    '```yaml',
    'upstreams:',
    '  api: { url: "http://127.0.0.1:3001" }',
    'routes:',
    '  - id: api',
    '    match: { path: /api, prefix: true }',
    '    upstream: api',
    '```'
  ].join('\n')
  const blocks = yamlBlocks(markdown, 'broken.md')
  t.same(blocks.map((b) => [b.where, b.marked]), [
    ['broken.md:3', false], ['broken.md:13', false], ['broken.md:20', false], ['broken.md:27', true],
    ['broken.md:31', false], ['broken.md:35', false]
  ])
  const [schema, fragment, manifest, , syntax, good] = blocks.map((b) => blockProblems(b))
  t.ok(schema?.includes('routes[0].auth: must be one of: required, optional, none'), `a schema problem: ${String(schema)}`)
  t.same(fragment, ['routes[0].policy.scopes.match: must be one of: all, any'])
  t.match(manifest?.[0], /^top-level keys apiVersion, kind make neither a config nor a route/)
  t.match(syntax?.[0], /^YAML syntax error/)
  t.same(good, [], 'a good block has no problems')

  const meaning = blockProblems({ where: 'broken.md:1', text: 'routes:\n  - { id: x, match: { path: /x }, upstream: nowhere }', marked: false })
  t.same(meaning, ['routes[0].upstream: unknown upstream "nowhere"'])
})
