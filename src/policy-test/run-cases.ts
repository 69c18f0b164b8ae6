/**
 * Runs cases through the real decision engine, the one a live request goes through: the same
 * normalization, route table, token verification and policy, with no listener and no network (keys come
 * from `stand-in-keys.ts`). What a case observes is compared member by member with what it expects, and
 * every difference is reported, not only the first.
 */
import type { CompiledConfig } from '../config/types.js'
import type { Decision } from '../decision/decide.js'
import { buildEngine, loadKeys, type Engine } from '../decision/engine.js'
import { explain, type Explanation } from '../decision/explain.js'
import { clientIp } from '../request/client-ip.js'
import type { Case, CaseExpectation, CaseRequest } from './cases-file.js'
import { StandInKeys, givenKeysFetch } from './stand-in-keys.js'

/** What the config decided for a request, in the terms of a case's expectation. */
export interface Observed {
  decision: 'allow' | 'deny'
  /** The denial's status; null on allow. */
  status: number | null
  error: string | null
  route: string | null
  scopes: readonly string[]
  headers: Readonly<Record<string, string>>
  audit: string | null
}

export interface CaseResult {
  case: Case
  observed: Observed
  /** One line per expectation not met; empty: the case passes. */
  mismatches: string[]
  /** The `explain` steps of the decision. */
  steps: readonly string[]
}

function observe (decision: Decision): Observed {
  const route = decision.route?.id ?? null
  if (!decision.allowed) {
    const { status, code } = decision.error
    return { decision: 'deny', status, error: code, route, scopes: [], headers: {}, audit: null }
  }
  return { decision: 'allow', status: null, error: null, route, scopes: decision.scopes, headers: decision.headers, audit: decision.audit?.code ?? null }
}

const show = (value: unknown): string => JSON.stringify(value)

/** Every way `observed` differs from `expected`. */
export function compare (expected: CaseExpectation, observed: Observed): string[] {
  const out: string[] = []
  const differ = (what: string, want: unknown, got: unknown): void => {
    if (show(want) !== show(got)) out.push(`${what}: expected ${show(want)}, got ${show(got)}`)
  }
  if (expected.decision !== undefined) differ('decision', expected.decision, observed.decision)
  if (expected.status !== undefined) differ('status', expected.status, observed.status)
  if (expected.error !== undefined) differ('error', expected.error, observed.error)
  if (expected.route !== undefined) differ('route', expected.route, observed.route)
  if (expected.scopes !== undefined) differ('scopes', expected.scopes, observed.scopes)
  if (expected.audit !== undefined) differ('audit', expected.audit, observed.audit)
  for (const [name, value] of Object.entries(expected.headers ?? {})) {
    differ(`header ${name.toLowerCase()}`, value, observed.headers[name.toLowerCase()] ?? null)
  }
  return out
}

export interface RunnerOptions {
  /** Issuer id to the JWKS that real tokens are verified against. */
  keys?: ReadonlyMap<string, unknown>
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number
}

/** Decides requests against one config. Build it once per config; it holds two engines and their keys. */
export class CaseRunner {
  private constructor (
    readonly config: CompiledConfig,
    private readonly standIn: StandInKeys,
    private readonly claimsEngine: Engine,
    private readonly tokenEngine: Engine,
    private readonly now: () => number
  ) {}

  static async create (config: CompiledConfig, options: RunnerOptions = {}): Promise<CaseRunner> {
    const now = options.now ?? Date.now
    const standIn = await StandInKeys.create(config)
    const claimsEngine = buildEngine(config, null, { fetch: standIn.fetch(), now })
    const tokenEngine = buildEngine(config, null, { fetch: givenKeysFetch(config, options.keys ?? new Map()), now })
    await Promise.all([loadKeys(claimsEngine), loadKeys(tokenEngine)])
    return new CaseRunner(config, standIn, claimsEngine, tokenEngine, now)
  }

  /** Issuers whose real tokens cannot be verified here, for the run's notes. */
  static issuersWithoutKeys (config: CompiledConfig, keys: ReadonlyMap<string, unknown>): string[] {
    return [...config.issuersById.keys()].filter((id) => !keys.has(id))
  }

  /**
   * The request decided by the real pipeline, with its `explain` steps: the decision and the steps come
   * from one run, so a report's explanation can never disagree with its verdict.
   */
  async explain (request: CaseRequest): Promise<Explanation> {
    const authorization: string[] = []
    const sent = request.headers.authorization
    if (sent !== undefined) authorization.push(sent)
    let engine = this.claimsEngine
    let token = request.token
    if (request.claims !== undefined) token = await this.standIn.sign(request.claims, Math.floor(this.now() / 1000))
    else if (token !== undefined) engine = this.tokenEngine
    const ip = clientIp(request.ip, request.headers['x-forwarded-for'], this.config.server.trustProxy)
    const host = request.host ?? request.headers.host
    return explain(this.config, { method: request.method, path: request.path, ip, host, token, engine, authorization })
  }

  async run (testCase: Case): Promise<CaseResult> {
    const { decision, lines } = await this.explain(testCase.request)
    const observed = observe(decision)
    return { case: testCase, observed, mismatches: compare(testCase.expect, observed), steps: lines }
  }

  async observe (request: CaseRequest): Promise<Observed> {
    return observe((await this.explain(request)).decision)
  }
}
