/**
 * The status page's HTML (docs/observability.md#status-page): one server-rendered document with inline
 * CSS and a short inline script that appends live denials from `/status/events`.
 *
 * Every value is escaped: route ids are the operator's, but paths, client ids, subjects, kids and error
 * messages come from clients and issuers. The script builds rows with `textContent` only, never markup
 * from data. The style and the script are constants, so the Content-Security-Policy names them by hash
 * (`STATUS_CSP`) and allows nothing else: no other script, style, frame, form or base URL.
 */
import { createHash } from 'node:crypto'
import type { DenialEntry, ReasonCount } from './denial-feed.js'
import type { CacheView, IssuerView, RouteView, StatusSnapshot } from './status-snapshot.js'

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}header span{opacity:.8}
main{padding:8px 24px 32px}section{margin-top:20px}h2{font-size:16px;margin:0 0 8px}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#eef0f3;font-weight:600;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums}code,.m{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
ul{margin:0;padding-left:18px}.muted{color:#6b7380}.hint{color:#4a5260;font-size:13px}
.b{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600}
.ready{background:#d8f3dc;color:#1b5e20}.stale,.starting{background:#fff3cd;color:#7a5a00}.unavailable,.failing,.disconnected{background:#fde2e1;color:#9b1c1c}
.sum{display:flex;gap:16px;margin:10px 0}.sum div{background:#fff;padding:8px 14px;box-shadow:0 1px 2px #0002}.sum b{font-size:20px;display:block}
#live.on{color:#8fe3a1}#live.off{color:#ffb4a8}tr.new td{background:#fffbe6}td.id{white-space:nowrap}
`

const SCRIPT = `
(() => {
  const rows = document.getElementById('denials')
  const reasons = document.getElementById('reasons')
  const live = document.getElementById('live')
  const max = Number(rows.dataset.max)
  const cluster = rows.dataset.cluster === '1'
  const cell = (tr, text, cls) => { const td = tr.insertCell(); td.textContent = text; if (cls) td.className = cls }
  const bump = (reason) => {
    let row = [...reasons.rows].find((r) => r.dataset.reason === reason)
    if (!row) {
      row = reasons.insertRow(); row.dataset.reason = reason
      cell(row, reason, 'm'); cell(row, '0', 'n'); cell(row, '0', 'n'); cell(row, '0', 'n'); cell(row, '', 'hint')
    }
    row.cells[3].textContent = String(Number(row.cells[3].textContent) + 1)
    for (const id of ['sum-recent', 'sum-total']) {
      const total = document.getElementById(id)
      total.textContent = String(Number(total.textContent) + 1)
    }
  }
  const source = new EventSource('/status/events')
  source.onopen = () => { live.textContent = 'live'; live.className = 'on' }
  source.onerror = () => { live.textContent = 'reconnecting'; live.className = 'off' }
  source.addEventListener('denial', (event) => {
    const d = JSON.parse(event.data)
    const tr = rows.insertRow(0)
    tr.className = 'new'
    cell(tr, new Date(d.at).toISOString().slice(11, 19))
    if (cluster) cell(tr, d.worker === null ? '' : String(d.worker), 'n')
    cell(tr, d.route ?? '-', 'm'); cell(tr, d.method ?? '-'); cell(tr, d.path ?? '-', 'm'); cell(tr, String(d.status), 'n')
    cell(tr, d.decision === 'audit_deny' ? d.reason + ' (audit)' : d.reason, 'm'); cell(tr, d.clientId ?? '-', 'm'); cell(tr, d.subject ?? '-', 'm')
    while (rows.rows.length > max) rows.deleteRow(-1)
    bump(d.reason)
  })
})()
`

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`

/** The page's Content-Security-Policy: its own style and script by hash, the live feed on this origin, nothing else. */
export const STATUS_CSP = `default-src 'none'; script-src ${hash(SCRIPT)}; style-src ${hash(STYLE)}; connect-src 'self'; ` +
  "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/** What a reason usually means for the people behind the denials: fixed texts, nothing from requests. */
const HINTS: Readonly<Record<string, string>> = {
  token_missing: 'no bearer token sent: a client calls without logging in, or a proxy in front drops Authorization',
  token_expired: 'expired tokens: clients do not refresh, or clocks disagree (see clockTolerance)',
  token_not_yet_valid: 'tokens from the future: a clock is off on the IdP or here',
  token_key_unknown: 'signed by a key the issuer\'s JWKS does not list: another tenant or environment, or a rotation (see Issuers)',
  token_signature_invalid: 'the signature does not verify: a forged or altered token, or a key re-used under the same kid',
  token_issuer_unknown: 'the token\'s iss is not configured: another IdP or tenant, or a trailing slash',
  token_issuer_not_allowed: 'the issuer is configured, but not accepted on this route',
  token_audience_invalid: 'tokens minted for another API: the client asks for the wrong audience',
  token_algorithm_not_allowed: 'a signing algorithm the issuer is not pinned to',
  token_malformed: 'not a JWT: an opaque token, an ID token mix-up, or garbage',
  token_type_invalid: 'not an access token (typ at+jwt required): an ID token sent as a bearer?',
  token_inactive: 'the IdP says the token is no longer active (revoked or expired)',
  keys_unavailable: 'the issuer\'s keys cannot be fetched: see Issuers below',
  introspection_unavailable: 'the introspection endpoint fails: see Issuers below',
  client_denied: 'an application this route does not accept',
  client_missing: 'tokens without a client id',
  audience_denied: 'an audience this route refuses',
  audience_missing: 'tokens without an audience',
  network_denied: 'requests from an address outside the route\'s network rules',
  scope_insufficient: 'the token lacks the scopes the route requires (after narrowing)',
  role_missing: 'the token lacks a required role',
  condition_failed: 'a policy condition does not hold (the decision log\'s detail names it)',
  no_route: 'no route matches: a wrong path, host or method',
  rate_limited: 'a rate limit is reached',
  dpop_required: 'a Bearer token where DPoP is required',
  dpop_proof_invalid: 'a DPoP proof that fails a check (htu behind a proxy?)'
}

/** Escapes text for HTML content and double- or single-quoted attribute values. */
export function escapeHtml (value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

const text = (value: string | null): string => value === null ? '<span class="muted">-</span>' : escapeHtml(value)

/** Seconds as `42 s`, `5 m 3 s`, `2 h 4 m`, `3 d 2 h`. */
export function formatSeconds (seconds: number): string {
  if (seconds < 60) return `${seconds} s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)} m ${seconds % 60} s`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor(seconds / 60) % 60} m`
  return `${Math.floor(seconds / 86400)} d ${Math.floor(seconds / 3600) % 24} h`
}

const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 19)

function table (head: string[], rows: string[], body = '<tbody>'): string {
  return `<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>${body}${rows.join('')}</tbody></table>`
}

function summary (snapshot: StatusSnapshot): string {
  const { reasons } = snapshot.denials
  const recent = reasons.reduce((n, r) => n + r.recent, 0)
  const total = reasons.reduce((n, r) => n + r.total, 0)
  const top = reasons[0]
  return `<div class="sum"><div><b id="sum-recent">${recent}</b>denials, last 5 minutes</div><div><b id="sum-total">${total}</b>denials since start</div>` +
    `<div><b>${top === undefined ? '-' : escapeHtml(top.reason)}</b>most frequent reason</div></div>`
}

function reasonRow (r: ReasonCount): string {
  return `<tr data-reason="${escapeHtml(r.reason)}"><td class="m">${escapeHtml(r.reason)}</td><td class="n">${r.recent}</td>` +
    `<td class="n">${r.total}</td><td class="n">0</td><td class="hint">${escapeHtml(HINTS[r.reason] ?? '')}</td></tr>`
}

function denialRow (d: DenialEntry, cluster: boolean): string {
  return `<tr><td>${clock(d.at)}</td>${cluster ? `<td class="n">${d.worker ?? ''}</td>` : ''}<td class="m">${text(d.route)}</td>` +
    `<td>${text(d.method)}</td><td class="m">${text(d.path)}</td><td class="n">${d.status}</td>` +
    `<td class="m">${escapeHtml(d.reason)}${d.decision === 'audit_deny' ? ' (audit)' : ''}</td><td class="m">${text(d.clientId)}</td><td class="m">${text(d.subject)}</td></tr>`
}

function issuerRow (i: IssuerView, takenAt: number): string {
  const failing = i.failingForSeconds === null ? '<span class="muted">-</span>' : `${clock(takenAt - i.failingForSeconds * 1000)} (${formatSeconds(i.failingForSeconds)})`
  const intro = i.introspection === null
    ? ''
    : `<br>introspection <span class="b ${i.introspection.state === 'failing' || i.introspection.state === 'unavailable' ? 'failing' : 'ready'}">${escapeHtml(i.introspection.state)}</span>` +
      (i.introspection.lastFailure === null ? '' : ` ${escapeHtml(i.introspection.lastFailure)}`)
  const from = `${i.keysFrom.kind === 'discovery' ? 'discovery ' : ''}<span class="m">${escapeHtml(i.keysFrom.url)}</span>` +
    (i.keysFrom.kind === 'discovery' && i.jwksUri !== null ? `<br>JWKS <span class="m">${escapeHtml(i.jwksUri)}</span>` : '')
  return `<tr><td class="m">${escapeHtml(i.id)}<br><span class="muted">${escapeHtml(i.issuer)}</span></td>` +
    `<td><span class="b ${i.state}">${i.state}</span>${intro}</td><td class="m">${i.kids.map((k) => escapeHtml(k === '' ? '(no kid)' : k)).join('<br>') || '-'}</td>` +
    `<td>${i.ageSeconds === null ? '<span class="muted">never fetched</span>' : formatSeconds(i.ageSeconds)}</td><td>${failing}</td>` +
    `<td class="m">${text(i.lastError)}</td><td>${from}</td></tr>`
}

function cacheRow (c: CacheView): string {
  const asked = c.hits === null || c.misses === null ? 0 : c.hits + c.misses
  const ratio = asked === 0 || c.hits === null ? '-' : `${(100 * c.hits / asked).toFixed(1)} %`
  return `<tr><td>${escapeHtml(c.name)}</td><td class="n">${c.entries}</td><td class="n">${c.hits ?? '-'}</td>` +
    `<td class="n">${c.misses ?? '-'}</td><td class="n">${ratio}</td></tr>`
}

function routeRow (r: RouteView): string {
  const rules = r.rules.length === 0 ? '<span class="muted">a valid token from any configured issuer</span>' : `<ul>${r.rules.map((l) => `<li>${escapeHtml(l)}</li>`).join('')}</ul>`
  return `<tr><td class="m id">${escapeHtml(r.id)}</td><td>${r.methods.length === 0 ? 'any' : escapeHtml(r.methods.join(' '))}</td>` +
    `<td class="m">${escapeHtml(r.host)}</td><td class="m">${escapeHtml(r.path)}${r.prefix ? ' <span class="muted">(prefix)</span>' : ''}</td>` +
    `<td class="m">${escapeHtml(r.upstream.id)}<br><span class="muted">${escapeHtml(r.upstream.url)}</span></td>` +
    `<td>${escapeHtml(r.auth)}<br>${escapeHtml(r.mode)}</td><td>${rules}</td></tr>`
}

/** Who answered: the group's workers, or this one process. */
function processes (snapshot: StatusSnapshot): string {
  const list = snapshot.processes
  if (list.length === 1 && list[0]?.worker === null) return `process ${list[0].pid}, up ${formatSeconds(list[0].uptimeSeconds)}`
  return `${list.length} workers: ${list.map((p) => `#${p.worker ?? '?'} (pid ${p.pid})`).join(', ')}`
}

/** The whole page. `recentLimit`: rows the live table keeps. */
export function renderStatusPage (snapshot: StatusSnapshot, recentLimit: number): string {
  const cluster = snapshot.processes.some((p) => p.worker !== null)
  const denialHead = ['time (UTC)', ...(cluster ? ['worker'] : []), 'route', 'method', 'path', 'status', 'reason', 'client', 'subject']
  const redis = snapshot.redis === null ? '' : ` · redis <span class="b ${snapshot.redis === 'connected' ? 'ready' : 'disconnected'}">${snapshot.redis}</span>`
  return '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">' +
    `<meta name="viewport" content="width=device-width,initial-scale=1"><title>scopegate status</title><style>${STYLE}</style></head><body>` +
    `<header><h1>scopegate status</h1><span>config ${escapeHtml(snapshot.config)}</span><span>${escapeHtml(processes(snapshot))}</span>` +
    `<span>snapshot ${clock(snapshot.takenAt)} UTC${redis}</span><span>denials feed: <b id="live" class="off">connecting</b></span></header><main>` +
    `<section><h2>Denials by reason</h2>${summary(snapshot)}` +
    table(['reason', 'last 5 min', 'since start', 'live (this page)', 'what it usually means'], snapshot.denials.reasons.map(reasonRow), '<tbody id="reasons">') + '</section>' +
    '<section><h2>Recent denials</h2>' +
    table(denialHead, snapshot.denials.recent.map((d) => denialRow(d, cluster)), `<tbody id="denials" data-max="${recentLimit}" data-cluster="${cluster ? 1 : 0}">`) + '</section>' +
    `<section><h2>Issuers</h2>${table(['issuer', 'state', 'kids', 'keys age', 'failing since', 'last error', 'keys from'], snapshot.issuers.map((i) => issuerRow(i, snapshot.takenAt)))}</section>` +
    `<section><h2>Caches</h2>${table(['cache', 'entries', 'hits', 'misses', 'hit ratio'], snapshot.caches.map(cacheRow))}</section>` +
    `<section><h2>Routes</h2>${table(['route', 'methods', 'host', 'path', 'upstream', 'auth / mode', 'rules, in the order they are checked'], snapshot.routes.map(routeRow))}</section>` +
    `</main><script>${SCRIPT}</script></body></html>`
}
