/**
 * The nginx `auth_request` configuration of docs/ingress-nginx.md ("Plain nginx"), as text: the tests that
 * put a real nginx in front of scopegate (`test/forward-auth/`) and the benchmark's ingress mode
 * (`nginx-ingress.ts`) build it here, so they all run the documented configuration and none drifts from it.
 */
import { fileURLToPath } from 'node:url'

/** The identity headers nginx copies from scopegate's allow to the upstream request. */
export const IDENTITY = ['x-auth-subject', 'x-auth-client-id', 'x-auth-scopes', 'x-auth-roles', 'x-auth-issuer', 'x-auth-route']

/** The shipped decision-cache snippet (docs/ingress-nginx.md), included as it is. */
export const AUTH_CACHE_CONF = fileURLToPath(new URL('../deploy/nginx/scopegate-auth-cache.conf', import.meta.url))

/**
 * The identity headers to copy: one `auth_request_set` and one `proxy_set_header` each, every line after
 * the first indented by `indent` (the first stands where the caller puts it).
 */
function copyIdentity (indent: string): string {
  return IDENTITY.map((name) => {
    const variable = `$scopegate_${name.slice(2).replace(/-/g, '_')}`
    return `auth_request_set ${variable} $upstream_http_${name.replace(/-/g, '_')};\n${indent}proxy_set_header ${name} ${variable};`
  }).join(`\n${indent}`)
}

/**
 * The upstream block for scopegate, as docs/ingress-nginx.md has it: kept-alive connections, so that a
 * decision does not cost nginx a TCP connection (with `proxy_http_version 1.1` and an empty `Connection`
 * in the auth location).
 */
export function scopegateUpstream (admin: string): string {
  return `
  upstream scopegate {
    server ${new URL(admin).host};
    keepalive 16;
  }`
}

/** scopegate's error code (docs/responses.md), read back from the challenge it answered with. */
export const ERROR_MAP = `
  map $scopegate_challenge $scopegate_error {
    default                          unauthorized;
    "~error=\\"(?<code>[a-z_]+)\\""  $code;
  }`

/** How the benchmark's servers differ from the tests'. */
export interface AuthServerTuning {
  /** Parameters of the `listen` directive after the address (`backlog=1024`). */
  listen?: string
  /** Kept-alive connections to the upstream (an `upstream` block with `keepalive`): HTTP/1.1, an empty `Connection`. */
  upstreamKeepalive?: boolean
  /**
   * The benchmark's layout: no blank line between locations, the identity lines aligned, and the line
   * of `authLines` there even when it is empty. The text each caller wrote before they shared this
   * builder, kept byte for byte so that runs before and after compare.
   */
  compact?: boolean
}

/**
 * One nginx server in front of `upstream`, asking scopegate (the upstream block). `authLines`: more
 * directives for the auth location, such as a decision cache.
 */
export function authServer (port: number, upstream: string, authLines = '', tuning: AuthServerTuning = {}): string {
  const gap = tuning.compact === true ? '' : '\n'
  const listen = tuning.listen === undefined ? '' : ` ${tuning.listen}`
  const keepalive = tuning.upstreamKeepalive === true ? '\n      proxy_http_version 1.1;\n      proxy_set_header Connection "";' : ''
  const extra = authLines === '' && tuning.compact !== true ? '' : `\n      ${authLines}`
  return `
  server {
    listen 127.0.0.1:${port}${listen};
${gap}    location / {
      auth_request /_scopegate;
      auth_request_set $scopegate_challenge $upstream_http_www_authenticate;
      ${copyIdentity(tuning.compact === true ? '      ' : '    ')}
      error_page 401 = @scopegate_401;
      error_page 403 = @scopegate_403;
      proxy_pass ${upstream};${keepalive}
    }
${gap}    location = /_scopegate {
      internal;${extra}
      proxy_pass http://scopegate/decisions;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_pass_request_headers off;
      proxy_set_header Content-Length "";
      proxy_set_header Authorization $http_authorization;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
${gap}    location @scopegate_401 {
      default_type application/json;
      return 401 '{"error":"$scopegate_error"}\\n';
    }
${gap}    location @scopegate_403 {
      default_type application/json;
      add_header WWW-Authenticate $scopegate_challenge always;
      return 403 '{"error":"$scopegate_error"}\\n';
    }
  }`
}
