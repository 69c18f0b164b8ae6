/**
 * The route table: exact routes beat prefix routes, the longest prefix wins, methods filter, and HEAD
 * is matched as GET. Built once per config; a lookup is one Map probe per path segment, so the cost
 * does not grow with the number of routes.
 */
import type { CompiledRoute } from '../config/types.js'

export interface RouteTable {
  /** The route for a normalized path, or null. */
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
    const key = `${route.prefix ? 'prefix' : 'exact'} ${route.prefix ? prefixKey(route.path) : route.path}`
    const same = seen.get(key) ?? []
    for (const other of same) {
      if (methodsOverlap(route, other)) {
        problems.push({
          index: route.index,
          message: `matches the same requests as route "${other.id}" (routes[${other.index}]): make their paths or methods distinct`
        })
      }
    }
    same.push(route)
    seen.set(key, same)
  }
  return problems
}

export function buildRouteTable (routes: readonly CompiledRoute[]): RouteTable {
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
