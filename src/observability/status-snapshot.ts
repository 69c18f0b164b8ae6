/**
 * What the status page shows (docs/observability.md#status-page), taken from the engine in force as
 * plain data: the page renders it, and a cluster primary merges one per worker (`mergeSnapshots`).
 *
 * Nothing secret is taken: no introspection client secret or key, no Redis URL (only whether it is
 * connected), no re-issue key file. URLs lose their user-info and query (an API key in a JWKS URL's
 * query is still a key), and so do URLs quoted in key-fetch errors.
 */
import type { CompiledRoute } from '../config/types.js'
import type { Engine } from '../decision/engine.js'
import { describeRouteHost, describeRouteRules } from '../decision/describe-policy.js'
import type { KeyStoreState } from '../keys/key-store.js'
import type { ReissueCache } from '../reissue/reissue-cache.js'
import type { DenialEntry, DenialFeed, ReasonCount } from './denial-feed.js'

export interface RouteView {
  id: string
  /** Upper-case methods; empty: every method. */
  methods: string[]
  host: string
  path: string
  prefix: boolean
  auth: string
  mode: string
  upstream: { id: string, url: string }
  /** The route's rules in words, in the order they are checked. */
  rules: string[]
}

export interface IssuerView {
  id: string
  issuer: string
  /** Where the keys come from: the configured JWKS URL, or the discovery document. */
  keysFrom: { kind: 'jwksUri' | 'discovery', url: string }
  /** The JWKS URL in use (discovered, or configured); null before discovery answered. */
  jwksUri: string | null
  state: KeyStoreState
  kids: string[]
  ageSeconds: number | null
  failingForSeconds: number | null
  lastError: string | null
  introspection: { state: string, lastFailure: string | null, failingForSeconds: number | null } | null
}

export interface CacheView {
  name: string
  entries: number
  /** null: the cache does not count them. */
  hits: number | null
  misses: number | null
}

export interface ProcessView {
  /** The cluster worker; null in a single process. */
  worker: number | null
  pid: number
  uptimeSeconds: number
}

export interface StatusSnapshot {
  /** Milliseconds since the epoch. */
  takenAt: number
  config: string
  processes: ProcessView[]
  routes: RouteView[]
  issuers: IssuerView[]
  caches: CacheView[]
  /** null without a redis section. */
  redis: 'connected' | 'disconnected' | null
  denials: { recent: DenialEntry[], reasons: ReasonCount[] }
}

export interface SnapshotSources {
  engine: Engine
  feed: DenialFeed
  reissueCache: ReissueCache | null
  redis: boolean | undefined
  worker: number | null
  now: number
}

/** A URL without user-info, query or fragment; text that is not a URL is returned as it is. */
export function displayUrl (text: string): string {
  try {
    const url = new URL(text)
    const hidden = url.search !== '' || url.hash !== ''
    url.username = ''
    url.password = ''
    url.search = ''
    url.hash = ''
    return url.href + (hidden ? '?…' : '')
  } catch {
    return text
  }
}

/** Longest error text kept, in characters. */
const MAX_ERROR = 300

/** An error message with every URL in it shown as `displayUrl` shows it. */
export function displayError (text: string | null): string | null {
  if (text === null) return null
  const shown = text.replace(/https?:\/\/[^\s"'<>]+/g, displayUrl)
  return shown.length > MAX_ERROR ? shown.slice(0, MAX_ERROR) + '…' : shown
}

function routeView (route: CompiledRoute): RouteView {
  return {
    id: route.id,
    methods: route.methods === null ? [] : [...route.methods],
    host: describeRouteHost(route),
    path: route.path,
    prefix: route.prefix,
    auth: route.auth,
    mode: route.mode,
    upstream: { id: route.upstream.id, url: displayUrl(route.upstream.base) },
    rules: describeRouteRules(route)
  }
}

function issuerViews (engine: Engine): IssuerView[] {
  const introspection = new Map((engine.introspection?.status() ?? []).map((s) => [s.issuer, s]))
  return [...engine.keyStores.values()].map((store) => {
    const status = store.status()
    const { kids, jwksUri } = store.keySummary()
    const intro = introspection.get(store.issuer.id)
    return {
      id: store.issuer.id,
      issuer: displayUrl(store.issuer.issuer),
      keysFrom: { kind: store.issuer.keys.kind, url: displayUrl(store.issuer.keys.url) },
      jwksUri: jwksUri === null ? null : displayUrl(jwksUri),
      state: status.state,
      kids: kids.map((kid) => kid.length > 64 ? kid.slice(0, 64) + '…' : kid),
      ageSeconds: status.ageSeconds,
      failingForSeconds: status.failingForSeconds,
      lastError: displayError(status.lastError),
      introspection: intro === undefined
        ? null
        : { state: intro.state, lastFailure: intro.lastFailure ?? null, failingForSeconds: intro.failingForSeconds ?? null }
    }
  })
}

function cacheViews (engine: Engine, reissue: ReissueCache | null): CacheView[] {
  const caches: CacheView[] = [
    { name: 'verified tokens', entries: engine.tokenCache.size, hits: engine.tokenCache.hits, misses: engine.tokenCache.misses },
    { name: 'signing keys', entries: [...engine.keyStores.values()].reduce((n, store) => n + store.status().keys, 0), hits: null, misses: null }
  ]
  if (engine.introspection !== undefined) caches.push({ name: 'introspection answers', entries: engine.introspection.cacheSize, hits: null, misses: null })
  if (reissue !== null) caches.push({ name: 're-issued tokens', entries: reissue.size, hits: reissue.hits, misses: reissue.misses })
  return caches
}

/** This process's view. */
export function takeSnapshot (sources: SnapshotSources): StatusSnapshot {
  const { engine, feed } = sources
  return {
    takenAt: sources.now,
    config: engine.config.source,
    processes: [{ worker: sources.worker, pid: process.pid, uptimeSeconds: Math.floor(process.uptime()) }],
    routes: engine.config.routes.map(routeView),
    issuers: issuerViews(engine),
    caches: cacheViews(engine, sources.reissueCache),
    redis: sources.redis === undefined ? null : sources.redis ? 'connected' : 'disconnected',
    denials: { recent: feed.latest(), reasons: feed.counts() }
  }
}
