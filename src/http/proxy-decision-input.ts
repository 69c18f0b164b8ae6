/**
 * What the decision engine is given for a request on the proxy listener, read from Node's own request:
 * shared by the two places that decide one, `early-refusal.ts` (before Fastify sees the request) and the
 * `onRequest` hook of `proxy-server.ts` (every request the first did not decide), so both decide alike.
 */
import type { IncomingMessage } from 'node:http'
import type { DecisionInput } from '../decision/decide.js'
import type { Engine } from '../decision/engine.js'
import { unmapIPv4, type IpMatcher } from '../net/ip-matcher.js'
import { DPOP_SCHEME, dpopProofValues } from '../request/extract-dpop-token.js'
import { authorizationValues } from '../request/extract-token.js'
import { receivedOrigin } from '../request/request-origin.js'

/** The origin the client sent to: TLS or, from a trusted proxy, `X-Forwarded-Proto`; and the Host header (also used by `upgrade.ts`). */
export function proxyOrigin (raw: IncomingMessage, trustProxy: IpMatcher | null): string | null {
  const trusted = trustProxy !== null && trustProxy.has(unmapIPv4(raw.socket.remoteAddress ?? ''))
  const proto = raw.headers['x-forwarded-proto']
  const encrypted = (raw.socket as { encrypted?: boolean }).encrypted === true
  return receivedOrigin(raw.headers.host, encrypted, trusted && typeof proto === 'string' ? proto : undefined)
}

/**
 * The engine's input for `raw`, whose Host `checkHost` (or `checkHttp2Host`) has accepted; `clientIp` as
 * `request/client-ip.ts` found it; `thumbprint`: the mTLS listener's certificate reader, if any.
 */
export function proxyDecisionInput (raw: IncomingMessage, engine: Engine, clientIp: string,
  thumbprint: ((raw: IncomingMessage) => string | undefined) | undefined): DecisionInput {
  return {
    method: raw.method ?? 'GET',
    target: raw.url ?? '',
    authorization: authorizationValues(raw.rawHeaders),
    clientIp,
    // One Host, agreeing with an absolute-form target: checkHost refused anything else.
    host: raw.headers.host,
    // Read only for a DPoP-scheme token (docs/dpop.md): the proofs, and the origin the client sent to.
    dpop: DPOP_SCHEME.test(raw.headers.authorization ?? '')
      ? { proofs: dpopProofValues(raw.rawHeaders), origin: proxyOrigin(raw, engine.config.server.trustProxy) }
      : undefined,
    certificateThumbprint: thumbprint?.(raw)
  }
}
