/**
 * deploy/observability, checked without a container engine: the alerting rules pass `promtool check
 * rules` and their unit tests (`promtool test rules`, a firing and a quiet case for every alert), carry
 * what an on-call needs (for, severity, summary, description, a runbook that exists in
 * docs/observability.md), and equal the PrometheusRule's; the Grafana dashboard has the shape Grafana
 * needs; the compose observability profile mounts files that exist and its services name each other
 * consistently, with a Prometheus config `promtool check config` accepts. test/ops/prometheus.test.ts
 * runs the same rules and the dashboard's queries against a real Prometheus.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, posix } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config/load.js'
import { OBSERVABILITY, alertGroups, dashboard, dashboardExpressions, dashboardPanels, selectorsOf } from '../helpers/observability-files.js'
import { PROMTOOL } from '../helpers/prometheus-server.js'
import { ROOT } from '../ops/support.js'

type Obj = Record<string, any>

const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8')
const RUNBOOK_BASE = 'https://github.com/scopegate/scopegate/blob/main/docs/observability.md#'

/** GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as dashes. */
const anchorOf = (heading: string): string => heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')

function promtool (...args: string[]): { status: number | null, output: string } {
  const result = spawnSync(PROMTOOL, args, { cwd: OBSERVABILITY, encoding: 'utf8', timeout: 60_000 })
  return { status: result.status, output: `${result.stdout}${result.stderr}` }
}

t.test('alerting rules: promtool check rules', async (t) => {
  const { status, output } = promtool('check', 'rules', 'scopegate-alerts.yaml')
  t.equal(status, 0, output)
  t.match(output, /SUCCESS: 9 rules found/)
})

t.test('alerting rules: promtool test rules, a firing and a quiet case for every alert', async (t) => {
  const files = readdirSync(join(OBSERVABILITY, 'tests')).filter((f) => f.endsWith('.yaml'))
  t.ok(files.length > 0, 'unit test files')
  const { status, output } = promtool('test', 'rules', ...files.map((f) => join('tests', f)))
  t.equal(status, 0, output)
  const cases = files.flatMap((f) => (parse(readFileSync(join(OBSERVABILITY, 'tests', f), 'utf8')) as Obj).tests as Obj[])
    .flatMap((test) => test.alert_rule_test as Obj[] ?? [])
  for (const rule of alertGroups().flatMap((g) => g.rules)) {
    const mine = cases.filter((c) => c.alertname === rule.alert)
    t.ok(mine.some((c) => (c.exp_alerts as Obj[]).length > 0), `${rule.alert}: a case where it fires`)
    t.ok(mine.some((c) => (c.exp_alerts as Obj[]).length === 0), `${rule.alert}: a case where it does not`)
  }
})

t.test('every alert has for, a severity, a summary, a description and a runbook in docs/observability.md', async (t) => {
  const doc = read('docs/observability.md')
  const anchors = new Set([...doc.matchAll(/^#{2,4} (.+)$/gm)].map((m) => anchorOf(m[1] as string)))
  const rules = alertGroups().flatMap((g) => g.rules)
  t.equal(new Set(rules.map((r) => r.alert)).size, rules.length, 'alert names are unique')
  for (const rule of rules) {
    t.match(rule.for, /^\d+[smh]$/, `${rule.alert}: for`)
    t.ok(['critical', 'warning'].includes(rule.labels?.severity ?? ''), `${rule.alert}: severity critical or warning`)
    t.ok(rule.annotations?.summary && rule.annotations?.description, `${rule.alert}: summary and description`)
    const runbook = rule.annotations?.runbook_url ?? ''
    t.equal(runbook, RUNBOOK_BASE + anchorOf(rule.alert), `${rule.alert}: runbook_url names its section`)
    t.ok(anchors.has(anchorOf(rule.alert)), `${rule.alert}: docs/observability.md has a section ${rule.alert}`)
    t.match(rule.expr, /by \(job, instance|^up\{/, `${rule.alert}: keeps job and instance`)
  }
})

t.test('the PrometheusRule holds the same groups as the plain rules file', async (t) => {
  const rule = parse(readFileSync(join(OBSERVABILITY, 'scopegate-prometheusrule.yaml'), 'utf8')) as Obj
  t.equal(rule.apiVersion, 'monitoring.coreos.com/v1')
  t.equal(rule.kind, 'PrometheusRule')
  t.ok(rule.metadata?.name && rule.metadata?.namespace, 'a name and a namespace')
  t.same(Object.keys(rule.spec), ['groups'], 'spec holds groups only')
  t.same(rule.spec.groups, alertGroups(), 'spec.groups equals scopegate-alerts.yaml\'s groups')
})

t.test('the Grafana dashboard: the shape Grafana imports', async (t) => {
  const board = dashboard()
  t.equal(board.uid, 'scopegate')
  t.ok(typeof board.schemaVersion === 'number' && board.schemaVersion >= 36, `schemaVersion ${String(board.schemaVersion)}`)
  const variables = new Map((board.templating.list as Obj[]).map((v) => [v.name as string, v]))
  t.match(variables.get('datasource'), { type: 'datasource', query: 'prometheus' }, 'a Prometheus datasource variable')
  const panels = dashboardPanels(board)
  t.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique')
  t.ok(panels.every((p) => Number.isInteger(p.id) && p.id > 0), 'panel ids are positive integers')
  const titles = panels.filter((p) => p.type !== 'row').map((p) => p.title as string)
  t.equal(new Set(titles).size, titles.length, 'panel titles are unique')
  for (const panel of panels) {
    const where = `panel ${String(panel.id)} "${String(panel.title)}"`
    const { h, w, x, y } = panel.gridPos ?? {}
    t.ok([h, w, x, y].every(Number.isInteger) && x >= 0 && w > 0 && x + w <= 24, `${where}: gridPos inside the 24 columns`)
    if (panel.type === 'row') continue
    t.ok(['timeseries', 'stat', 'state-timeline'].includes(panel.type), `${where}: a known panel type`)
    t.same(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, `${where}: the datasource variable`)
    t.ok(typeof panel.description === 'string' && panel.description.length > 0, `${where}: says what it shows`)
    const targets = panel.targets as Obj[]
    t.ok(targets.length > 0, `${where}: queries`)
    t.equal(new Set(targets.map((q) => q.refId)).size, targets.length, `${where}: refIds are unique`)
  }
  // No two panels cover the same cell.
  const cells = new Map<string, string>()
  const overlaps: string[] = []
  for (const panel of panels) {
    const { h, w, x, y } = panel.gridPos
    for (let row = y; row < y + h; row++) {
      for (let col = x; col < x + w; col++) {
        const owner = cells.get(`${row}:${col}`)
        if (owner !== undefined) overlaps.push(`"${String(panel.title)}" on "${owner}"`)
        cells.set(`${row}:${col}`, String(panel.title))
      }
    }
  }
  t.same([...new Set(overlaps)], [], 'no two panels overlap')
})

t.test('the Grafana dashboard: every query uses defined variables, and selects by job and instance', async (t) => {
  const board = dashboard()
  const defined = new Set((board.templating.list as Obj[]).map((v) => v.name as string))
  const expressions = dashboardExpressions(board)
  t.ok(expressions.length >= 20, `${expressions.length} queries`)
  for (const { where, expr } of expressions) {
    for (const [, braced, bare] of expr.matchAll(/\$\{(\w+)\}|\$(\w+)/g)) {
      const name = braced ?? bare ?? ''
      t.ok(defined.has(name) || name === '__rate_interval', `${where}: $${name} is defined`)
    }
    for (const selector of selectorsOf(expr)) {
      t.match(selector, /job=~"\$job", instance=~"\$instance"/, `${where}: ${selector.replace(/\{.*/, '')} selected by $job and $instance`)
    }
    if (expr.includes('histogram_quantile')) t.match(expr, /by \((?:[\w, ]*, )?le\) \(rate\(scopegate_request_duration_seconds_bucket/, `${where}: a quantile over the buckets' rates, by le`)
  }
})

interface Service {
  image?: string
  profiles?: string[]
  command?: string[]
  volumes?: string[]
  ports?: string[]
  depends_on?: string[] | Record<string, unknown>
  network_mode?: string
  networks?: Record<string, { aliases?: string[] } | null>
  environment?: Record<string, string>
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> }
const OBSERVABILITY_SERVICES = ['otel-collector', 'jaeger', 'prometheus', 'grafana']

/** A service's bind mounts: repository path (without `./`) → container path. */
function mounts (service: Service): Map<string, string> {
  return new Map((service.volumes ?? []).filter((v) => v.startsWith('./')).map((v) => {
    const [source, target] = v.split(':')
    return [posix.normalize(source ?? ''), target ?? '']
  }))
}
/** The repository path mounted at `target`, also when `target` is inside a mounted folder. */
function sourceOf (service: Service, target: string): string | undefined {
  for (const [source, at] of mounts(service)) {
    if (at === target) return source
    if (target.startsWith(`${at}/`)) return posix.join(source, target.slice(at.length + 1))
  }
  return undefined
}
const flag = (service: Service, name: string): string | undefined =>
  service.command?.find((c) => c.startsWith(`${name}=`))?.slice(name.length + 1)

t.test('compose observability profile: services, files and references', async (t) => {
  const { services } = compose
  for (const name of OBSERVABILITY_SERVICES) {
    t.same(services[name]?.profiles, ['observability'], `${name}: only with --profile observability`)
    t.match(services[name]?.image, /^[\w./-]+:v?\d[\w.-]*$/, `${name}: an image with a pinned version`)
  }
  for (const [name, service] of Object.entries(services)) {
    for (const source of mounts(service).keys()) t.ok(existsSync(join(ROOT, source)), `${name}: ${source} exists`)
    const deps = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {})
    for (const dep of deps) t.ok(services[dep], `${name}: depends on ${dep}, a service`)
  }
})

t.test('compose observability profile: Prometheus scrapes scopegate\'s admin port and loads the rules', async (t) => {
  const prometheus = compose.services.prometheus as Service
  const configAt = flag(prometheus, '--config.file') ?? ''
  const configSource = sourceOf(prometheus, configAt)
  t.equal(configSource, 'deploy/observability/prometheus.yml', 'the config file mounted where --config.file reads it')
  const config = parse(read('deploy/observability/prometheus.yml')) as Obj
  for (const ruleFile of config.rule_files as string[]) {
    const source = sourceOf(prometheus, posix.join(posix.dirname(configAt), ruleFile))
    t.equal(source, posix.join('deploy/observability', ruleFile), `rule file ${ruleFile}: the repository's file, where the config looks for it`)
  }
  const { status, output } = promtool('check', 'config', 'prometheus.yml')
  t.equal(status, 0, output)

  // scopegate shares its API's network namespace: it is reached by an alias of that service.
  const scopegate = compose.services.scopegate as Service
  const host = /^service:(.+)$/.exec(scopegate.network_mode ?? '')?.[1] ?? ''
  const aliases = compose.services[host]?.networks?.default?.aliases ?? []
  const gateway = await loadConfig(join(ROOT, 'config/compose.yaml'), {})
  const jobs = config.scrape_configs as Obj[]
  const job = jobs.find((j) => /scopegate/.test(j.job_name))
  t.ok(job, 'a scrape job named for scopegate (the ScopegateTargetDown alert matches it)')
  t.equal(job?.metrics_path ?? '/metrics', '/metrics')
  t.same(job?.static_configs?.[0]?.targets, [`scopegate:${gateway.server.admin.port}`], 'scopegate\'s admin port')
  t.ok(aliases.includes('scopegate'), `"scopegate" names ${host}, whose network namespace scopegate shares`)
  t.ok(!(prometheus.ports ?? []).some((p) => p.split(':')[0] === String(gateway.server.admin.port)), 'not published on the host port of scopegate\'s admin listener')
})

t.test('compose observability profile: Grafana is provisioned with the dashboard and Prometheus', async (t) => {
  const grafana = compose.services.grafana as Service
  const datasourcesDir = sourceOf(grafana, '/etc/grafana/provisioning/datasources')
  const dashboardsDir = sourceOf(grafana, '/etc/grafana/provisioning/dashboards')
  t.ok(datasourcesDir && dashboardsDir, 'both provisioning folders are mounted')
  const datasources = readdirSync(join(ROOT, datasourcesDir ?? '')).flatMap((f) => (parse(read(posix.join(datasourcesDir ?? '', f))) as Obj).datasources as Obj[])
  const byType = (type: string): Obj | undefined => datasources.find((d) => d.type === type)
  t.equal(new URL(byType('prometheus')?.url).host, 'prometheus:9090', 'Prometheus by its service name and the port it listens on')
  t.equal(byType('prometheus')?.isDefault, true, 'the default datasource: the dashboard\'s variable picks it')
  t.equal(new URL(byType('jaeger')?.url).host, 'jaeger:16686', 'Jaeger\'s query port')
  const providers = readdirSync(join(ROOT, dashboardsDir ?? '')).flatMap((f) => (parse(read(posix.join(dashboardsDir ?? '', f))) as Obj).providers as Obj[])
  t.equal(providers.length, 1, 'one dashboard provider')
  t.equal(sourceOf(grafana, posix.join(providers[0]?.options.path, 'scopegate.json')), 'deploy/observability/grafana/scopegate.json', 'the dashboard is where the provider reads')
  for (const dep of ['prometheus', 'jaeger']) t.ok((grafana.depends_on as string[]).includes(dep), `starts after ${dep}`)
})

t.test('compose observability profile: the collector sends traces on to Jaeger', async (t) => {
  const collector = compose.services['otel-collector'] as Service
  const configSource = sourceOf(collector, flag(collector, '--config') ?? '')
  t.equal(configSource, 'deploy/observability/otel-collector.yaml', 'the config mounted where --config reads it')
  const config = parse(read(configSource ?? '')) as Obj
  t.match(config.receivers?.otlp?.protocols?.http?.endpoint, /:4318$/, 'OTLP over HTTP on 4318')
  const traces = config.service?.pipelines?.traces as Obj
  for (const name of traces.receivers as string[]) t.ok(config.receivers?.[name], `receiver ${name} is defined`)
  const endpoints = (traces.exporters as string[]).map((name) => config.exporters?.[name]?.endpoint as string | undefined)
  // Jaeger takes OTLP over gRPC (4317) and HTTP (4318): either will do.
  t.ok(endpoints.some((e) => e !== undefined && /^(https?:\/\/)?jaeger:431[78](\/.*)?$/.test(e)), 'an exporter sends to the jaeger service\'s OTLP port')
  t.equal(compose.services.jaeger?.environment?.COLLECTOR_OTLP_ENABLED, 'true', 'Jaeger accepts OTLP')
})
