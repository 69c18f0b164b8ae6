/**
 * The route table: hosts first, then paths. The routes of the request's exact host are tried first, then
 * those of its wildcard hosts from the longest suffix to the shortest, then the routes without a host
 * (docs/policy.md, "Hosts"); within each, exact routes beat prefix routes, the longest prefix wins,
 * methods filter, and HEAD is matched as GET. Built once per config; a lookup is one Map probe per path
 * segment (and per host label, only when some route names a host), so the cost does not grow with the
 * number of routes.
 */
import type { CompiledRoute } from '../config/types.js'
import { describeHostPattern } from './match-host.js'

export interface RouteTable {
  /**
   * The route for a normalized path on a host as `requestHost` reads it ('' when the request names
   * none: only routes without a host match), or null.
   */
  match (method: string, path: string, host: string): CompiledRoute | null
}

/** The routes of one host (or of every host), by path. */
interface PathTable {
  match (method: string, path: string): CompiledRoute | null
}

function accepts (route: CompiledRoute, method: string): boolean {
  const methods = route.methods
  return methods === null || methods.has(method) || (method === 'HEAD' && methods.has('GET'))
}

function pick (candidates: readonly CompiledRoute[] | undefined, method: string): CompiledRoute | null {
  if (candidates === undefined) return null
  for (const route of candidates) if (accepts(route, method)) return route
  return null
}

/** `/a/b/` and `/a/b` are the same prefix; `/` stays `/`. */
export function prefixKey (path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
}

function methodsOverlap (a: CompiledRoute, b: CompiledRoute): boolean {
  if (a.methods === null || b.methods === null) return true
  for (const m of a.methods) if (accepts(b, m) || (m === 'GET' && b.methods.has('HEAD'))) return true
  return false
}

/**
 * Two routes on the same path and kind whose methods overlap could match the same request equally:
 * that is a config error. Returns one message per such pair.
 */
export function findAmbiguities (routes: readonly CompiledRoute[]): Array<{ index: number, message: string }> {
  const problems: Array<{ index: number, message: string }> = []
  const seen = new Map<string, CompiledRoute[]>()
  for (const route of routes) {
    const host = route.host === null ? '*' : describeHostPattern(route.host)
    const key = `${host} ${route.prefix ? 'prefix' : 'exact'} ${route.prefix ? prefixKey(route.path) : route.path}`
    const same = seen.get(key) ?? []
    for (const other of same) {
      if (methodsOverlap(route, other)) {
        problems.push({
          index: route.index,
          message: `matches the same requests as route "${other.id}" (routes[${other.index}]): make their hosts, paths or methods distinct`
        })
      }
    }
    same.push(route)
    seen.set(key, same)
  }
  return problems
}

function buildPathTable (routes: readonly CompiledRoute[]): PathTable {
  const exact = new Map<string, CompiledRoute[]>()
  const prefixes = new Map<string, CompiledRoute[]>()
  for (const route of routes) {
    const map = route.prefix ? prefixes : exact
    const key = route.prefix ? prefixKey(route.path) : route.path
    const list = map.get(key) ?? []
    list.push(route)
    map.set(key, list)
  }
  const hasPrefixes = prefixes.size > 0

  return {
    match (method, path) {
      const hit = pick(exact.get(path), method)
      if (hit !== null || !hasPrefixes) return hit
      // Walk up the path one segment at a time: `/a/b/c`, `/a/b`, `/a`, `/`.
      let candidate = prefixKey(path)
      for (;;) {
        const found = pick(prefixes.get(candidate), method)
        if (found !== null) return found
        if (candidate === '/') return null
        const slash = candidate.lastIndexOf('/')
        candidate = slash <= 0 ? '/' : candidate.slice(0, slash)
      }
    }
  }
}

export function buildRouteTable (routes: readonly CompiledRoute[]): RouteTable {
  const anyHost = buildPathTable(routes.filter((route) => route.host === null))
  const exactHosts = new Map<string, CompiledRoute[]>()
  const wildcardHosts = new Map<string, CompiledRoute[]>()
  for (const route of routes) {
    if (route.host === null) continue
    const [map, key] = route.host.kind === 'exact' ? [exactHosts, route.host.host] : [wildcardHosts, route.host.suffix]
    map.set(key, [...(map.get(key) ?? []), route])
  }
  if (exactHosts.size === 0 && wildcardHosts.size === 0) return { match: (method, path) => anyHost.match(method, path) }
  const exact = new Map([...exactHosts].map(([host, list]) => [host, buildPathTable(list)]))
  const wildcard = new Map([...wildcardHosts].map(([suffix, list]) => [suffix, buildPathTable(list)]))

  return {
    match (method, path, host) {
      if (host !== '') {
        const hit = exact.get(host)?.match(method, path) ?? null
        if (hit !== null) return hit
        // `a.b.example.com`: `.b.example.com`, then `.example.com`, then `.com`; never the whole host.
        if (wildcard.size > 0) {
          for (let dot = host.indexOf('.', 1); dot > 0; dot = host.indexOf('.', dot + 1)) {
            const found = wildcard.get(host.slice(dot))?.match(method, path) ?? null
            if (found !== null) return found
          }
        }
      }
      return anyHost.match(method, path)
    }
  }
}
