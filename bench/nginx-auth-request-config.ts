/**
 * The nginx `auth_request` configuration of docs/ingress-nginx.md ("Plain nginx"), as text: one source
 * for the benchmark's nginx (`nginx-ingress.ts`) and for the tests that put a real nginx in front of
 * scopegate (`test/forward-auth/`), so that the bench measures, and the
 * tests prove, the documented configuration, and neither drifts from it. Here because the bench's build
 * (`bench/tsconfig.json`) compiles only this folder, while the tests can import from anywhere.
 */
import { fileURLToPath } from 'node:url'

/** The shipped decision-cache snippet (docs/ingress-nginx.md), included as it is. */
export const AUTH_CACHE_CONF = fileURLToPath(new URL('../deploy/nginx/scopegate-auth-cache.conf', import.meta.url))

/** The identity headers nginx copies from scopegate's allow to the upstream request. */
export const IDENTITY = ['x-auth-subject', 'x-auth-client-id', 'x-auth-scopes', 'x-auth-roles', 'x-auth-issuer', 'x-auth-route']

/** The identity headers to copy: one `auth_request_set` and one `proxy_set_header` each. */
function copyIdentity (): string {
  return IDENTITY.map((name) => {
    const variable = `$scopegate_${name.slice(2).replace(/-/g, '_')}`
    return `    auth_request_set ${variable} $upstream_http_${name.replace(/-/g, '_')};\n    proxy_set_header ${name} ${variable};`
  }).join('\n')
}

/**
 * The upstream blocks of docs/ingress-nginx.md: scopegate (`admin`, its admin listener) and the app
 * (`app`), both with kept-alive connections, so that neither a decision nor a forwarded request costs
 * nginx a TCP connection (with `proxy_http_version 1.1` and an empty `Connection` in each location).
 */
export function scopegateUpstream (admin: string, app: string): string {
  return `
  upstream scopegate {
    server ${new URL(admin).host};
    keepalive 64;
  }
  upstream app {
    server ${new URL(app).host};
    keepalive 64;
    keepalive_timeout 4s;
  }`
}

/** scopegate's error code (docs/responses.md), read back from the challenge it answered with. */
export const ERROR_MAP = `
  map $scopegate_challenge $scopegate_error {
    default                          unauthorized;
    "~error=\\"(?<code>[a-z_]+)\\""  $code;
  }`

/**
 * One nginx server in front of the app, asking scopegate (the upstream blocks). `authLines`: more
 * directives for the auth location, such as a decision cache.
 */
export function authServer (port: number, authLines = ''): string {
  return `
  server {
    listen 127.0.0.1:${port};

    location / {
      auth_request /_scopegate;
      auth_request_set $scopegate_challenge $upstream_http_www_authenticate;
  ${copyIdentity()}
      error_page 401 = @scopegate_401;
      error_page 403 = @scopegate_403;
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }

    location = /_scopegate {
      internal;${authLines === '' ? '' : `\n      ${authLines}`}
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

    location @scopegate_401 {
      default_type application/json;
      return 401 '{"error":"$scopegate_error"}\\n';
    }

    location @scopegate_403 {
      default_type application/json;
      add_header WWW-Authenticate $scopegate_challenge always;
      return 403 '{"error":"$scopegate_error"}\\n';
    }
  }`
}
