/**
 * The reports of `scopegate test`: a summary for people (each failing case with its differences and the
 * `explain` steps of its decision), TAP 14 and JUnit XML for CI systems. Each is a pure function of the
 * results, so the command decides where it goes.
 */
import { stringify } from 'yaml'
import type { CaseResult } from './run-cases.js'

export type ReporterName = 'human' | 'tap' | 'junit'
export const REPORTERS: readonly ReporterName[] = ['human', 'tap', 'junit']

export interface Report {
  results: readonly CaseResult[]
  /** Lines that qualify the whole run (stand-in keys, issuers without keys). */
  notes: readonly string[]
}

function summary (results: readonly CaseResult[]): string {
  const failed = results.filter((r) => r.mismatches.length > 0).length
  return `${results.length - failed} passed, ${failed} failed`
}

function human ({ results, notes }: Report): string {
  const lines: string[] = []
  for (const result of results) {
    const { name, location } = result.case
    if (result.mismatches.length === 0) {
      lines.push(`ok    ${name}`)
      continue
    }
    lines.push(`FAIL  ${name}  (${location})`)
    for (const mismatch of result.mismatches) lines.push(`        ${mismatch}`)
    lines.push('      explain:')
    for (const step of result.steps) lines.push(`        ${step}`)
  }
  for (const note of notes) lines.push(`note: ${note}`)
  lines.push(summary(results))
  return lines.join('\n') + '\n'
}

/** A YAML block indented under a TAP test point (TAP 14 §YAML diagnostics). */
function diagnostics (value: Record<string, unknown>): string {
  const body = stringify(value).trimEnd().split('\n').map((line) => `  ${line}`).join('\n')
  return `  ---\n${body}\n  ...\n`
}

/** A test point's description: TAP reads `#` as the start of a directive, so it is escaped. */
const tapText = (text: string): string => text.replace(/\\/g, '\\\\').replace(/#/g, '\\#').replace(/[\r\n]+/g, ' ')

function tap ({ results, notes }: Report): string {
  let out = `TAP version 14\n1..${results.length}\n`
  results.forEach((result, i) => {
    const { name, location } = result.case
    if (result.mismatches.length === 0) {
      out += `ok ${i + 1} - ${tapText(name)}\n`
      return
    }
    out += `not ok ${i + 1} - ${tapText(name)}\n`
    out += diagnostics({ at: location, mismatches: result.mismatches, explain: result.steps })
  })
  for (const note of notes) out += `# ${note.replace(/[\r\n]+/g, ' ')}\n`
  return out + `# ${summary(results)}\n`
}

/** XML text and attribute escaping; characters XML 1.0 cannot carry at all are dropped. */
function xml (text: string): string {
  return text
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;')
}

function junit ({ results, notes }: Report): string {
  const files = new Map<string, CaseResult[]>()
  for (const result of results) {
    const file = result.case.location.replace(/#.*$/, '')
    files.set(file, [...(files.get(file) ?? []), result])
  }
  const failures = results.filter((r) => r.mismatches.length > 0).length
  let out = '<?xml version="1.0" encoding="UTF-8"?>\n'
  out += `<testsuites name="scopegate test" tests="${results.length}" failures="${failures}" errors="0">\n`
  for (const [file, cases] of files) {
    const failed = cases.filter((r) => r.mismatches.length > 0).length
    out += `  <testsuite name="${xml(file)}" tests="${cases.length}" failures="${failed}" errors="0" skipped="0">\n`
    for (const result of cases) {
      const { name } = result.case
      out += `    <testcase name="${xml(name)}" classname="${xml(file)}">`
      if (result.mismatches.length > 0) {
        const detail = [...result.mismatches, '', 'explain:', ...result.steps].join('\n')
        out += `\n      <failure message="${xml(result.mismatches.join('; '))}" type="expectation">${xml(detail)}</failure>\n    `
      }
      out += '</testcase>\n'
    }
    out += '  </testsuite>\n'
  }
  if (notes.length > 0) out += `  <!-- ${xml(notes.join(' | ')).replace(/--/g, '- -')} -->\n`
  return out + '</testsuites>\n'
}

export function formatReport (reporter: ReporterName, report: Report): string {
  switch (reporter) {
    case 'tap': return tap(report)
    case 'junit': return junit(report)
    case 'human': return human(report)
  }
}
