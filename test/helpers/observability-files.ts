/**
 * The files of deploy/observability as the tests read them: the alerting rules, the Grafana dashboard and
 * the PromQL in both, with the dashboard's variables replaced by what "All" would select, so every
 * expression can be run against a real Prometheus.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

export const OBSERVABILITY = fileURLToPath(new URL('../../deploy/observability/', import.meta.url))
export const ALERTS_FILE = `${OBSERVABILITY}scopegate-alerts.yaml`
export const DASHBOARD_FILE = `${OBSERVABILITY}grafana/scopegate.json`

type Obj = Record<string, any>

export interface AlertRule {
  alert: string
  expr: string
  for: string
  labels: Record<string, string>
  annotations: Record<string, string>
}

export function alertGroups (): Array<{ name: string, rules: AlertRule[] }> {
  return (parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: Array<{ name: string, rules: AlertRule[] }> }).groups
}

export function dashboard (): Obj {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Obj
}

/** Every panel of the dashboard, those inside collapsed rows included. */
export function dashboardPanels (board: Obj = dashboard()): Obj[] {
  return (board.panels as Obj[]).flatMap((p) => [p, ...(p.panels as Obj[] | undefined ?? [])])
}

/** One PromQL expression and where it comes from (a panel's title and refId, or an alert's name). */
export interface Expression { where: string, expr: string }

export function dashboardExpressions (board: Obj = dashboard()): Expression[] {
  return dashboardPanels(board).flatMap((panel) =>
    (panel.targets as Obj[] | undefined ?? []).map((target) => ({ where: `panel "${String(panel.title)}" ${String(target.refId)}`, expr: String(target.expr) })))
}

export function alertExpressions (): Expression[] {
  return alertGroups().flatMap((group) => group.rules.map((rule) => ({ where: `alert ${rule.alert}`, expr: rule.expr })))
}

/** Grafana's interval variables, and the window they stand for in the tests (Prometheus scrapes every second there). */
const INTERVALS: Record<string, string> = { __rate_interval: '1m', __interval: '15s', __range: '1h' }

/**
 * The expression as Grafana sends it with every variable at "All": `$__rate_interval` a window, and the
 * dashboard's own variables (`$job`, `${route}`...) the regex `.*` (each is used with `=~`).
 */
export function substituteVariables (expr: string): string {
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (_all, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare ?? ''
    return INTERVALS[name] ?? '.*'
  })
}

/** The series selectors of an expression: each metric name with its matchers, as written. */
export function selectorsOf (expr: string): string[] {
  const found = expr.matchAll(/\b(?:(?:scopegate|process|nodejs)_[a-zA-Z0-9_]+(?:\{[^}]*\})?|up\{[^}]*\})/g)
  return [...new Set([...found].map((m) => m[0]))]
}
