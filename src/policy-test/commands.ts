/**
 * The `scopegate test` and `scopegate diff` commands (docs/policy-testing.md). Exit codes, for CI:
 * `test` 0 every case passes, 1 some case fails, 2 a cases file or config cannot be used;
 * `diff` 0 nothing widened access, 1 something did, 2 a file cannot be used.
 */
import { parseArgs } from 'node:util'
import { ConfigError, formatProblems } from '../config/problems.js'
import { loadConfig } from '../config/load.js'
import type { CompiledConfig } from '../config/types.js'
import { readCases, type Case, type CasesFile } from './cases-file.js'
import { diffDecisions, formatChanges, type DiffRequest } from './diff.js'
import { generateCases, requestFor } from './generate-cases.js'
import { formatReport, REPORTERS, type ReporterName } from './reporters.js'
import { CaseRunner, type CaseResult } from './run-cases.js'

const UNUSABLE = 2

/** Thrown for input that stops the run; the message is printed as is. */
class Unusable extends Error {}

async function configOrThrow (file: string): Promise<CompiledConfig> {
  try {
    return await loadConfig(file)
  } catch (err) {
    if (err instanceof ConfigError) throw new Unusable(`${file}: invalid config\n${formatProblems(err)}`)
    throw err
  }
}

async function casesOrThrow (files: readonly string[]): Promise<CasesFile[]> {
  const read: CasesFile[] = []
  const problems: string[] = []
  for (const file of files) {
    try {
      read.push(await readCases(file))
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      problems.push(`${file}: invalid cases file\n${formatProblems(err)}`)
    }
  }
  if (problems.length > 0) throw new Unusable(problems.join('\n'))
  return read
}

/** Every issuer key set the files give, checked against the config's issuers. */
function keysOf (config: CompiledConfig, files: readonly CasesFile[]): Map<string, unknown> {
  const keys = new Map<string, unknown>()
  const unknown: string[] = []
  for (const file of files) {
    for (const [issuer, jwks] of file.keys) {
      if (config.issuersById.has(issuer)) keys.set(issuer, jwks)
      else unknown.push(`${file.file}: keys.${issuer}: no issuer with id "${issuer}" in ${config.source}`)
    }
  }
  if (unknown.length > 0) throw new Unusable(unknown.join('\n'))
  return keys
}

function notesFor (config: CompiledConfig, keys: ReadonlyMap<string, unknown>, cases: readonly Case[]): string[] {
  const notes: string[] = []
  if (cases.some((c) => c.request.claims !== undefined)) {
    notes.push('cases given as claims were signed with stand-in keys: the issuers\' real keys were not used')
  }
  const unverifiable = new Set(CaseRunner.issuersWithoutKeys(config, keys))
  if (cases.some((c) => c.request.token !== undefined) && unverifiable.size > 0) {
    notes.push(`no keys given for issuer(s) ${[...unverifiable].join(', ')}: their real tokens are refused as if their keys were unreachable`)
  }
  return notes
}

async function runTest (args: string[], write: (text: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string' }, reporter: { type: 'string', default: 'human' } }
  })
  const reporter = values.reporter as ReporterName
  if (values.config === undefined || positionals.length === 0 || !REPORTERS.includes(reporter)) {
    throw new Unusable(`usage: scopegate test --config FILE [--reporter ${REPORTERS.join('|')}] CASES.yaml...`)
  }
  const config = await configOrThrow(values.config)
  const files = await casesOrThrow(positionals)
  const keys = keysOf(config, files)
  const runner = await CaseRunner.create(config, { keys })
  const cases = files.flatMap((f) => f.cases)
  const results: CaseResult[] = []
  for (const testCase of cases) results.push(await runner.run(testCase))
  write(formatReport(reporter, { results, notes: notesFor(config, keys, cases) }))
  return results.some((r) => r.mismatches.length > 0) ? 1 : 0
}

async function runDiff (args: string[], write: (text: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { from: { type: 'string' }, to: { type: 'string' } }
  })
  if (values.from === undefined || values.to === undefined) {
    throw new Unusable('usage: scopegate diff --from OLD.yaml --to NEW.yaml [CASES.yaml...]')
  }
  const [before, after] = [await configOrThrow(values.from), await configOrThrow(values.to)]
  const files = await casesOrThrow(positionals)
  const [from, to] = [
    await CaseRunner.create(before, { keys: keysOf(before, files) }),
    await CaseRunner.create(after, { keys: keysOf(after, files) })
  ]
  const requests: DiffRequest[] = files.flatMap((f) => f.cases).map((c) => ({ name: c.name, before: c.request, after: c.request }))
  for (const generated of generateCases([before, after])) {
    requests.push({ name: generated.name, before: requestFor(before, generated), after: requestFor(after, generated) })
  }
  const changes = await diffDecisions(from, to, requests)
  write(formatChanges(changes, requests.length))
  return changes.some((c) => c.kind === 'widened') ? 1 : 0
}

/** Runs `scopegate test` or `scopegate diff` with their arguments; resolves the exit code. */
export async function policyTestCommand (command: 'test' | 'diff', args: string[],
  out: (text: string) => void = (t) => { process.stdout.write(t) },
  err: (text: string) => void = (t) => { process.stderr.write(t) }): Promise<number> {
  try {
    return command === 'test' ? await runTest(args, out) : await runDiff(args, out)
  } catch (error) {
    const usage = error instanceof Unusable || String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS_')
    if (!usage) throw error
    err(`${(error as Error).message}\n`)
    return UNUSABLE
  }
}
