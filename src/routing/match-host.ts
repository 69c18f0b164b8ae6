/**
 * Host patterns of `match.host` (docs/policy.md, "Hosts"). A pattern is an exact name (`api.example.com`)
 * or a leading wildcard (`*.example.com`), which matches one or more labels in front of the suffix
 * (`a.example.com`, `a.b.example.com`) but never the bare suffix (`example.com`): the reading of the
 * Gateway API and Envoy, not the one-label reading of Kubernetes Ingress. Names are compared without
 * case, without the port and without one trailing dot, so `API.Example.com.:8443` is `api.example.com`:
 * a client cannot step around a host's route by spelling the host another way its upstream accepts.
 */

/** A compiled `match.host`: the lower-case name, or the lower-case suffix with its leading dot. */
export type HostPattern =
  | { kind: 'exact', host: string }
  | { kind: 'wildcard', suffix: string }

/** A DNS name, or an IP literal (IPv6 in brackets); labels of letters, digits, `-` and `_`. */
const HOST_NAME = /^(?:[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$|^\[[0-9a-f:.]+\]$/

/** The text of a `match.host` as compiled; null when it is not a host name or `*.` and one. */
export function compileHostPattern (text: string): HostPattern | null {
  const lower = text.toLowerCase()
  if (lower.startsWith('*.')) {
    const rest = lower.slice(2)
    return HOST_NAME.test(rest) && !rest.startsWith('[') ? { kind: 'wildcard', suffix: `.${rest}` } : null
  }
  return HOST_NAME.test(lower) ? { kind: 'exact', host: lower } : null
}

/** How a pattern is written back, for messages and `explain`. */
export function describeHostPattern (pattern: HostPattern): string {
  return pattern.kind === 'exact' ? pattern.host : `*${pattern.suffix}`
}

/**
 * The host of a Host header (or an ingress's original host) as routes compare it: lower-case, without
 * the port and one trailing dot. '' when there is none.
 */
export function requestHost (value: string | undefined): string {
  if (value === undefined) return ''
  let host = value.trim().toLowerCase()
  if (host.startsWith('[')) {
    const end = host.indexOf(']')
    host = end < 0 ? host : host.slice(0, end + 1)
  } else {
    const colon = host.lastIndexOf(':')
    if (colon >= 0) host = host.slice(0, colon)
  }
  return host.endsWith('.') ? host.slice(0, -1) : host
}

/** Whether a request host (from `requestHost`) is matched by a pattern. */
export function hostMatches (pattern: HostPattern, host: string): boolean {
  if (pattern.kind === 'exact') return host === pattern.host
  return host.length > pattern.suffix.length && host.endsWith(pattern.suffix)
}
