/**
 * The one canonical form of a request path (docs/config.md#request-hygiene). The path scopegate authorizes must be exactly
 * the path it forwards: if the router saw `/todos/..%2fadmin` as "under /todos" while the upstream
 * decoded it to `/admin`, every route policy could be walked around. So the raw target is turned into a
 * single canonical path here, that path is matched, and that same string goes upstream; anything that
 * has no safe canonical form (encoded `/` or `\`, NUL, a `..` above the root, malformed escapes, a
 * double-encoded `.`, `/` or `\` such as `%252F`) is refused with 400 rather than guessed at.
 *
 * Canonical form: only unreserved characters are decoded (decoding anything else could change how the
 * upstream splits the path), remaining escapes use upper-case hex, `;` parameters are dropped from every
 * segment before dot segments are resolved (so `..;` is `..`, as Tomcat and Spring read it), repeated
 * slashes are merged, and `.` / `..` are resolved after decoding (so `%2e%2e` is `..`). A few printable
 * characters RFC 3986 does not allow in a path but that clients do send (`" < > ^ \` { | } [ ]`) are
 * percent-encoded rather than refused, so `/a|b` and `/a%7Cb` are one path. Encoded control characters
 * (`%00`-`%1F`, `%7F`) are refused like raw ones: no legitimate API path carries them, and an upstream
 * that decodes them into logs or file names should never see them. The query string is not this
 * module's business: it passes through byte for byte.
 *
 * This runs on every request, so a path that is already canonical (the common case) is recognised by one
 * regex and returned as is.
 */
import { deny } from '../shared/errors.js'

/** A request target split into the canonical path and the untouched query. */
export type NormalizedTarget = {
  /** Canonical path: starts with `/`, no dot segments, no empty segments, no `;` parameters. */
  path: string
  /** The query exactly as received, including its leading `?`, or `''` when there is none. */
  query: string
}

/** Fixed public text for every rejection: it never echoes the path (see `GatewayError.description`). */
const PATH_INVALID = 'the request path is not acceptable'

/**
 * Already canonical: segments of plain path characters (unreserved, sub-delims other than `;`, `:`,
 * `@`), no `%`, no empty segment, no `.` or `..` segment, an optional trailing slash. Each repetition
 * starts at a `/`, so matching is linear.
 */
const CANONICAL = /^(?:\/(?!\.\.?(?:\/|$))[\w\-.~!$&'()*+,=:@]+)*\/?$/

/** `http://host/a?x` or `https://…`: the authority is dropped, the rest is an origin-form target. */
const ABSOLUTE_FORM = /^https?:\/\/[^/?#]*/i

/** Character classes by code unit (0-127), built once. */
const UNRESERVED = new Uint8Array(128)
const PATH_CHAR = new Uint8Array(128)
const ENCODE = new Uint8Array(128)
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c)
  if (/[A-Za-z0-9\-._~]/.test(ch)) UNRESERVED[c] = 1
  if (UNRESERVED[c] === 1 || "!$&'()*+,;=:@".includes(ch)) PATH_CHAR[c] = 1
  if ('"<>^`{|}[]'.includes(ch)) ENCODE[c] = 1
}

const HEX_DIGITS = '0123456789ABCDEF'

/** After `%25`: the hex pairs of `.`, `/` and `\`, which a second decoding would turn into path syntax. */
const DOUBLE_ENCODED: ReadonlySet<string> = new Set(['2e', '2f', '5c'])

function hexValue (c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  return -1 // also NaN, past the end of the string
}

function reject (detail: string): never {
  throw deny.badRequest('path_invalid', PATH_INVALID, detail)
}

/**
 * Decodes and checks one segment (the text between two slashes), and drops its `;` parameters. The whole
 * segment is checked, parameters included: a NUL or backslash is refused wherever it appears.
 */
function canonicalSegment (segment: string): string {
  let out = ''
  let params = -1 // index in `out` of the first literal `;`
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i)
    if (c === 0x25) { // %
      const hi = hexValue(segment.charCodeAt(i + 1))
      const lo = hexValue(segment.charCodeAt(i + 2))
      if (hi < 0 || lo < 0) reject('malformed percent-escape in path')
      const value = hi * 16 + lo
      if (value === 0x2f) reject('encoded slash (%2F) in path')
      if (value === 0x5c) reject('encoded backslash (%5C) in path')
      if (value < 0x20 || value === 0x7f) reject('encoded NUL or control character in path')
      // `%252F` is a literal `%2F` here, but an upstream (or a framework in it) that decodes twice reads
      // `/`, and then `%252e%252e` climbs out of the route that was judged (Traefik GHSA-vrch-868g-9jx5).
      if (value === 0x25 && DOUBLE_ENCODED.has(segment.slice(i + 3, i + 5).toLowerCase())) reject('double-encoded dot, slash or backslash (%252E, %252F, %255C) in path')
      out += UNRESERVED[value] === 1
        ? String.fromCharCode(value)
        : '%' + (HEX_DIGITS[hi] as string) + (HEX_DIGITS[lo] as string)
      i += 2
    } else if (c < 128 && PATH_CHAR[c] === 1) {
      if (c === 0x3b && params < 0) params = out.length // ;
      out += segment[i]
    } else if (c === 0x5c) {
      reject('backslash in path')
    } else if (c < 0x20 || c === 0x7f) {
      reject('NUL or control character in path')
    } else if (c === 0x20 || c > 0x7e) {
      reject('space or non-ASCII character in path')
    } else if (ENCODE[c] === 1) {
      out += '%' + (HEX_DIGITS[c >> 4] as string) + (HEX_DIGITS[c & 15] as string)
    } else {
      reject('character not allowed in path') // `#`: a fragment is never part of a request target
    }
  }
  return params < 0 ? out : out.slice(0, params)
}

/** The slow path: the raw path starts with `/` and is not already canonical. */
function canonicalPath (raw: string): string {
  const segments = raw.split('/')
  const kept: string[] = []
  let trailingSlash = false
  // segments[0] is the empty string before the leading slash
  for (let i = 1; i < segments.length; i++) {
    const segment = canonicalSegment(segments[i] as string)
    const last = i === segments.length - 1
    if (segment === '' || segment === '.') {
      trailingSlash = last
    } else if (segment === '..') {
      if (kept.length === 0) reject('dot segment above the root')
      kept.pop()
      trailingSlash = last
    } else {
      kept.push(segment)
      trailingSlash = false
    }
  }
  if (kept.length === 0) return '/'
  return '/' + kept.join('/') + (trailingSlash ? '/' : '')
}

/**
 * Splits a raw request target (Node's `req.url`) into the canonical path and the untouched query.
 *
 * Accepts origin-form (`/a/b?x=1`) and absolute-form with an http or https scheme (`http://host/a?x`,
 * whose authority is ignored). Anything else (`*`, an empty target, a path not starting with `/`) is
 * refused. A trailing slash is kept (`/a/b/` and `/a/b/.` give `/a/b/`); an empty path is `/`.
 *
 * @throws GatewayError 400 `invalid_request` (reason `path_invalid`) when the target has no safe
 *   canonical form; its description is fixed text, its detail says which rule refused it.
 */
export function normalizeTarget (rawUrl: string): NormalizedTarget {
  let target = rawUrl
  if (target.charCodeAt(0) !== 0x2f) { // not origin-form
    const absolute = ABSOLUTE_FORM.exec(target)
    if (absolute === null) reject('request target is neither origin-form nor absolute-form')
    target = target.slice(absolute[0].length)
    if (target === '' || target.charCodeAt(0) === 0x3f) target = '/' + target // `http://host?x`
    else if (target.charCodeAt(0) !== 0x2f) reject('request target is neither origin-form nor absolute-form')
  }
  const q = target.indexOf('?')
  const rawPath = q === -1 ? target : target.slice(0, q)
  const query = q === -1 ? '' : target.slice(q)
  const path = CANONICAL.test(rawPath) ? rawPath : canonicalPath(rawPath)
  return { path, query }
}

/**
 * Builds the path sent upstream from a normalized request path.
 *
 * @param base The upstream URL's base path without a trailing slash: `''` or `/api`.
 * @param routePath The matched route's `match.path` (normalized). Only used when `stripPrefix` is set.
 * @param path The normalized request path, which the router has matched against `routePath`.
 * @param stripPrefix Remove `routePath` from the front of `path`, segment-aware: with prefix `/todos`,
 *   `/todos/1` becomes `/1` and `/todos` becomes `/` (or just `base` when there is one).
 * @returns `base` followed by the (stripped) path; always starts with `/`.
 * @throws Error when `stripPrefix` is set and `path` is not under `routePath`: the router never lets
 *   that happen, and forwarding the unstripped path instead would send the request somewhere else.
 */
export function joinUpstreamPath (base: string, routePath: string, path: string, stripPrefix: boolean): string {
  const prefix = base.endsWith('/') ? base.slice(0, -1) : base
  let rest = path
  if (stripPrefix) {
    const strip = routePath.endsWith('/') ? routePath.slice(0, -1) : routePath // `/` strips nothing
    if (path === strip) rest = ''
    else if (path.startsWith(strip) && path.charCodeAt(strip.length) === 0x2f) rest = path.slice(strip.length)
    else throw new Error(`path is not under the route prefix ${JSON.stringify(routePath)}`)
  }
  const joined = prefix + rest
  return joined === '' ? '/' : joined
}
