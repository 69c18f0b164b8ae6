/**
 * A cases file for `scopegate test` and `scopegate diff` (see docs/policy-testing.md): requests, and
 * what the config must decide for each. It is read like a config file: YAML, validated against a JSON
 * Schema with `additionalProperties: false`, and every problem reported at once with its path
 * (`cases[3].expect.status: must be integer`), so a typo in an expectation is never a silent pass.
 */
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { Ajv, type ErrorObject } from 'ajv'
import { parseDocument } from 'yaml'
import { ConfigError, type ConfigProblem } from '../config/problems.js'

/** One request to decide. Exactly one of `claims` and `token` carries the credential; neither is anonymous. */
export interface CaseRequest {
  method: string
  /** Path and query, as a client would send them. */
  path: string
  /** Sent as the Host header. */
  host?: string
  /** The client's address as scopegate's socket would see it. */
  ip: string
  /** Other request headers (lower-case names); `authorization` and `x-forwarded-for` are read as live. */
  headers: Record<string, string>
  /** Claims of a token that a stand-in key signs (see `stand-in-keys.ts`). */
  claims?: Record<string, unknown>
  /** A real token, verified against the keys given in the file's `keys`. */
  token?: string
}

/** What the config must decide; every member is optional, and only what is given is compared. */
export interface CaseExpectation {
  decision?: 'allow' | 'deny'
  /** The denial's HTTP status. */
  status?: number
  /** The denial's `error` code, or in audit mode the code enforce mode would have answered. */
  error?: string
  /** The route that matched (null: none). */
  route?: string | null
  /** The narrowed scopes forwarded, in order. */
  scopes?: string[]
  /** Identity headers forwarded: a value, or null for "not sent". */
  headers?: Record<string, string | null>
  /** In audit mode: the code enforce mode would have answered (null: none). */
  audit?: string | null
}

export interface Case {
  name: string
  request: CaseRequest
  expect: CaseExpectation
  /** Where the case stands in its file, for reports: `demo.cases.yaml#cases[3]`. */
  location: string
}

export interface CasesFile {
  file: string
  cases: Case[]
  /** Issuer id to the JWKS (public keys) that real tokens of that issuer are verified against. */
  keys: Map<string, unknown>
}

const STRING_MAP = { type: 'object', additionalProperties: { type: 'string' } }

const REQUEST = {
  type: 'object',
  additionalProperties: false,
  required: ['path'],
  properties: {
    method: { type: 'string', pattern: '^[A-Za-z]+$', default: 'GET' },
    path: { type: 'string', minLength: 1 },
    host: { type: 'string', minLength: 1 },
    ip: { type: 'string', minLength: 1, default: '127.0.0.1' },
    headers: { ...STRING_MAP, default: {} },
    claims: { type: 'object' },
    token: { type: 'string', minLength: 1 }
  },
  not: { required: ['claims', 'token'] }
}

const EXPECT = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    decision: { enum: ['allow', 'deny'] },
    status: { type: 'integer', minimum: 100, maximum: 599 },
    error: { type: 'string' },
    route: { type: ['string', 'null'] },
    scopes: { type: 'array', items: { type: 'string' } },
    headers: { type: 'object', additionalProperties: { type: ['string', 'null'] } },
    audit: { type: ['string', 'null'] }
  }
}

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['cases'],
  properties: {
    keys: { type: 'object', additionalProperties: { type: 'string', minLength: 1 }, default: {} },
    cases: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'request', 'expect'],
        properties: { name: { type: 'string', minLength: 1 }, request: REQUEST, expect: EXPECT }
      }
    }
  }
}

const validate = new Ajv({ allErrors: true, useDefaults: true, strict: false }).compile(SCHEMA)

/** `/cases/3/expect/status` as `cases[3].expect.status`, the way config problems are named. */
function dotted (pointer: string): string {
  return pointer.split('/').slice(1).map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((path, part) => /^\d+$/.test(part) ? `${path}[${part}]` : path === '' ? part : `${path}.${part}`, '')
}

function problemOf (error: ErrorObject): ConfigProblem {
  const path = dotted(error.instancePath)
  if (error.keyword === 'additionalProperties') {
    return { path, message: `unknown key "${String(error.params.additionalProperty)}"` }
  }
  if (error.keyword === 'not') return { path, message: 'give either claims or token, not both' }
  return { path, message: error.message ?? 'is not valid' }
}

interface RawCases {
  keys: Record<string, string>
  cases: Array<{ name: string, request: CaseRequest, expect: CaseExpectation }>
}

/**
 * Parses and validates cases text. `file` names it in problems and anchors the relative key paths.
 * @throws ConfigError with every problem found.
 */
export async function parseCases (text: string, file: string): Promise<CasesFile> {
  const document = parseDocument(text, { prettyErrors: false })
  if (document.errors.length > 0) {
    throw new ConfigError(file, document.errors.map((e) => ({ path: '', message: `YAML: ${e.message.split('\n')[0] ?? ''}` })))
  }
  const raw: unknown = document.toJS()
  if (!validate(raw)) {
    // Ajv reports each failed branch of `type: [..]` and the like: one line per path and message is enough.
    const seen = new Set<string>()
    const problems = (validate.errors ?? []).map(problemOf).filter((p) => {
      const key = `${p.path}\n${p.message}`
      return seen.has(key) ? false : (seen.add(key), true)
    })
    throw new ConfigError(file, problems)
  }
  const parsed = raw as unknown as RawCases
  const keys = new Map<string, unknown>()
  const problems: ConfigProblem[] = []
  for (const [issuer, path] of Object.entries(parsed.keys)) {
    try {
      keys.set(issuer, JSON.parse(await readFile(resolve(dirname(file), path), 'utf8')))
    } catch (err) {
      problems.push({ path: `keys.${issuer}`, message: `cannot read a JWKS from ${path}: ${(err as Error).message}` })
    }
  }
  if (problems.length > 0) throw new ConfigError(file, problems)
  return {
    file,
    keys,
    cases: parsed.cases.map((c, i) => ({
      name: c.name,
      request: { ...c.request, method: c.request.method.toUpperCase(), headers: lowerCaseKeys(c.request.headers) },
      expect: c.expect,
      location: `${file}#cases[${i}]`
    }))
  }
}

function lowerCaseKeys (headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]))
}

/** Reads and validates a cases file. @throws ConfigError (also for a file that cannot be read). */
export async function readCases (file: string): Promise<CasesFile> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }])
  }
  return parseCases(text, file)
}
