/**
 * The nginx `auth_request` configuration of docs/ingress-nginx.md ("Plain nginx"), as text for
 * `startNginx`: the tests that put a real nginx in front of scopegate build it here, so they all run the
 * documented configuration and none drifts from it. The text itself is `bench/nginx-auth-request-config.ts`,
 * which the benchmark's nginx uses too.
 */
import { fileURLToPath } from 'node:url'

export { ERROR_MAP, IDENTITY, authServer, scopegateUpstream } from '../../bench/nginx-auth-request-config.js'

/** The shipped decision-cache snippet (docs/ingress-nginx.md), included as it is by the tests. */
export const AUTH_CACHE_CONF = fileURLToPath(new URL('../../deploy/nginx/scopegate-auth-cache.conf', import.meta.url))
