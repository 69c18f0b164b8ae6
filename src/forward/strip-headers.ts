/**
 * Request headers the upstream must never receive from a client, because upstream frameworks and
 * proxies act on them as instructions: a URL or prefix to route to instead of the one scopegate
 * authorized, a method to execute instead of the one it authorized, a client address or scheme to
 * believe. scopegate decides on the request line and the socket, so a client copy of any of these would
 * make the upstream act on something that was never checked. Each name cites who reads it.
 *
 * Names are also compared with `_` read as `-`: CGI, WSGI, PHP and Rack expose both `X-Auth-Subject` and
 * `X_Auth_Subject` as `HTTP_X_AUTH_SUBJECT`, and Node's parser accepts `_` in header names, so an
 * underscore spelling would otherwise slip past an exact-name list and still land in the variable the
 * application reads. See docs/proxying.md, "What the upstream receives".
 */

/** Request-target overrides: the upstream routes to the URL or prefix in the header. */
export const ROUTING_HEADERS = [
  'x-original-url', // IIS URL Rewrite, Symfony before 2.8.44 / 3.4.14 (CVE-2018-14773), Zend
  'x-rewrite-url', // IIS ISAPI_Rewrite, Symfony, Zend (CVE-2018-14773)
  'x-original-uri', // nginx auth_request setups, some PHP front controllers
  'x-override-url',
  'x-http-destinationurl',
  'x-proxy-url',
  'x-original-host', // host overrides: Azure Application Gateway sets it, some applications read it
  'x-host',
  'x-http-host-override',
  'x-forwarded' // the pre-standard single header; every X-Forwarded-* name is stripped by prefix
] as const

/** Method overrides: authorized as one method, executed as another. */
export const METHOD_OVERRIDE_HEADERS = [
  'x-http-method-override', // Express method-override, Rack::MethodOverride, Symfony, Google APIs
  'x-http-method', // OData, SharePoint
  'x-method-override',
  'x-original-method' // nginx auth_request convention
] as const

/** Client addresses and schemes set by a CDN or load balancer; a client's copy is a claim about itself. */
export const CLIENT_ADDRESS_HEADERS = [
  'forwarded', // RFC 7239; scopegate sets its own when server.forwarded.forwarded is on
  'forwarded-for',
  'x-real-ip', // nginx realip
  'true-client-ip', // Akamai, Cloudflare Enterprise
  'cf-connecting-ip', // Cloudflare
  'cf-connecting-ipv6',
  'fastly-client-ip', // Fastly
  'x-client-ip',
  'x-cluster-client-ip', // Rackspace, Riverbed
  'x-originating-ip',
  'x-remote-ip',
  'x-remote-addr',
  'client-ip',
  'x-original-forwarded-for', // ingress-nginx
  'x-azure-clientip', // Azure Front Door
  'x-azure-socketip',
  'x-appengine-user-ip', // Google App Engine
  'x-proxyuser-ip',
  'front-end-https', // Microsoft: "the client connection was TLS"
  'x-url-scheme',
  'x-scheme'
] as const

/**
 * Whole families: `x-auth-` is scopegate's own identity namespace; `x-forwarded-` holds For, Proto, Host
 * and Port (which scopegate sets) and Prefix (Spring), Path, Uri (Traefik), Ssl and Scheme (Rack),
 * Server; `x-accel-` is nginx's internal redirect and buffering control; `x-envoy-` is Envoy's internal
 * namespace (retry policy, timeouts, the original path), honoured by a sidecar that trusts scopegate.
 */
export const STRIPPED_PREFIXES = ['x-auth-', 'x-forwarded-', 'x-accel-', 'x-envoy-'] as const

/** The names stripped on every route: a route's `forward.stripHeaders` adds to these. */
export const DEFAULT_STRIPPED_HEADERS: readonly string[] = [...ROUTING_HEADERS, ...METHOD_OVERRIDE_HEADERS, ...CLIENT_ADDRESS_HEADERS]

/** The Set a route strips by exact name, built once at load: the defaults and the route's own, lower-cased. */
export function compileStrippedHeaders (extra: readonly string[] = []): ReadonlySet<string> {
  return new Set([...DEFAULT_STRIPPED_HEADERS, ...extra.map((name) => name.toLowerCase())])
}

function listed (name: string, names: ReadonlySet<string>, identity: ReadonlySet<string>): boolean {
  if (names.has(name) || identity.has(name)) return true
  // Every prefix starts with `x-`: one comparison rules out most names.
  if (name.charCodeAt(0) !== 0x78 || name.charCodeAt(1) !== 0x2d) return false
  for (const prefix of STRIPPED_PREFIXES) if (name.startsWith(prefix)) return true
  return false
}

/**
 * Whether a client header must be removed before the request goes upstream.
 *
 * @param name Lower-case, as Node parses it.
 * @param names The route's compiled Set (`compileStrippedHeaders`).
 * @param identity The headers scopegate sets from the token (`x-auth-*` and `forward.claims` names).
 */
export function isStrippedHeader (name: string, names: ReadonlySet<string>, identity: ReadonlySet<string>): boolean {
  if (listed(name, names, identity)) return true
  return name.includes('_') && listed(name.replaceAll('_', '-'), names, identity)
}
