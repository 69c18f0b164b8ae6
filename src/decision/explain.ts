/**
 * `scopegate explain`: runs one request through the gateway's own pipeline (`decide.ts`) with a recorder,
 * and prints what each stage found. There is no second copy of the pipeline here, only the rendering, so
 * an explanation cannot disagree with a decision. With a token, the signature is verified against the
 * issuer's real keys; with a claims file, a verifier that takes the claims as verified stands in for the
 * real one: signature and expiry are skipped, and the output says so.
 */
import { confirmation } from '../token/confirmation.js'
import type { CompiledConfig, CompiledRoute } from '../config/types.js'
import { decideKnown, decidePending, PendingDecision, type Decision, type DpopInput, type Recorder, type Step } from './decide.js'
import { buildEngine, loadKeys, type Engine } from './engine.js'
import { GatewayError, toGatewayError } from '../shared/errors.js'
import { describeHostPattern } from '../routing/match-host.js'
import { describeRoute } from './describe-policy.js'
import { checkClaimTypes } from '../token/check-claim-types.js'
import { identityClaims } from '../token/claims.js'
import type { JwtPayload } from '../token/parse-jwt.js'
import { describeRateLimitKey } from '../limits/rate-limiter.js'
import { cacheKey, verifiedToken, type VerifiedToken } from '../token/verified-token.js'
import type { TokenLookup, TokenMiss, Verifier } from '../token/verify-token.js'

export interface ExplainInput {
  method: string
  path: string
  ip: string
  /** The Host the request names (port allowed); absent: none, and only routes without a host match. */
  host?: string
  token?: string
  claims?: JwtPayload
  /** The engine to decide with; default: one built from the config, fetching keys when a token needs them. */
  engine?: Engine
  /** Authorization values sent as they are, ahead of the one made from `token` or `claims`. */
  authorization?: readonly string[]
  /** A DPoP proof and the request's origin: `token` is then sent as `DPoP <token>` (docs/dpop.md). */
  dpop?: DpopInput
  /** The client certificate's thumbprint (base64url SHA-256 of its DER), for a certificate-bound token (docs/tls.md). */
  certificateThumbprint?: string
}

export interface Explanation {
  lines: string[]
  allowed: boolean
  /** The decision the pipeline made, exactly as the gateway would have made it. */
  decision: Decision
}

/** What explain sends as the bearer with a claims file: any well-formed value, the claims verifier ignores it. */
const CLAIMS_BEARER = 'Bearer claims-file'

function denial (err: GatewayError): string {
  return `DENY ${err.status} ${err.code} (${err.reason}): ${err.description}${err.detail === undefined ? '' : ` [${err.detail}]`}`
}

/** A token built from a claims file, for explaining a policy without a signed token. */
function tokenFromClaims (config: CompiledConfig, claims: JwtPayload): VerifiedToken | GatewayError {
  const issuer = typeof claims.iss === 'string' ? config.issuersByIss.get(claims.iss) : undefined
  const fallback = config.issuersById.size === 1 ? [...config.issuersById.values()][0] : undefined
  const chosen = issuer ?? fallback
  if (chosen === undefined) {
    return new GatewayError(401, 'invalid_token', 'token_issuer_unknown', 'the token issuer is not accepted', { detail: `iss ${JSON.stringify(claims.iss)} is not configured` })
  }
  try {
    // The claims must have the types the gateway requires; expiry is not checked here, so `exp` may be left out.
    checkClaimTypes({ exp: 0, ...claims }, chosen, config)
  } catch (err) {
    return toGatewayError(err)
  }
  const bound = confirmation(claims)
  return verifiedToken(identityClaims(claims, chosen.claims), chosen, claims, Number(claims.exp ?? 0), null, 0, cacheKey(JSON.stringify(claims)), bound.jkt, bound.x5t)
}

/** Stands in for the token verifier with a claims file: every bearer "verifies" to these claims. */
function claimsVerifier (config: CompiledConfig, claims: JwtPayload): Verifier {
  const found = tokenFromClaims(config, claims)
  return {
    lookup: (): TokenLookup => found,
    verifyMiss: async (_miss: TokenMiss): Promise<VerifiedToken> => { throw new Error('a claims verifier never misses') }
  }
}

/** The recorder of one explanation: one or more lines per stage, in the order the pipeline ran them. */
function stepWriter (input: ExplainInput, say: (step: string, text: string) => void): Recorder {
  const fromClaims = input.claims !== undefined
  let route: CompiledRoute | null = null
  return (step: Step): void => {
    switch (step.stage) {
      case 'path': {
        say('path', step.path === input.path.split('?')[0] ? `${step.path} (already normalized)` : `normalized to ${step.path}`)
        return
      }
      case 'route': {
        route = step.route
        if (step.route.host !== null) say('host', `${step.host} matches ${describeHostPattern(step.route.host)}`)
        else if (step.host !== '') say('host', `${step.host}: the route answers every host`)
        say('route', describeRoute(step.route))
        return
      }
      case 'condition': {
        const value = `${step.label} (value ${JSON.stringify(step.value) ?? 'absent'})`
        say('condition', step.failure === null ? `pass: ${value}` : `${value}: ${denial(step.failure)}`)
        return
      }
      case 'token': {
        const { token, failure } = step
        if (failure !== null) return say('token', denial(failure))
        if (token === null) return say('token', route?.auth === 'none' ? 'not checked (auth: none)' : 'none: anonymous (auth: optional)')
        const expires = new Date(token.expiresAt * 1000).toISOString()
        // No signing key and not from claims: an opaque token the issuer answered for (docs/opaque-tokens.md).
        if (!fromClaims && token.key === null) {
          say('introspect', `issuer ${token.issuer.id} answered active${step.via === 'cache' ? ' (remembered answer)' : ''}, expires ${expires}`)
        }
        say('token', fromClaims
          ? `from claims: signature and expiry NOT checked; issuer ${token.issuer.id}`
          : token.key === null ? `introspected: issuer ${token.issuer.id}` : `verified: issuer ${token.issuer.id}, signature ok, expires ${expires}`)
        say('identity', `sub ${token.subject ?? '-'}, client ${token.clientId ?? '-'}, roles [${token.roles.join(' ')}], aud [${token.audiences?.join(' ') ?? 'missing'}]`)
        say('scopes', `token asks for [${token.scopes.join(' ')}]`)
        return
      }
      case 'narrow': {
        say('narrow', `[${step.from.join(' ')}] -> [${step.to.join(' ')}]`)
        return
      }
      case 'require': {
        if (step.failure !== null) return say('require', denial(step.failure))
        const scopes = route?.policy.scopes
        say('require', scopes === undefined || scopes.require.length === 0 ? 'nothing required' : `pass (${scopes.match} of [${scopes.require.join(' ')}])`)
        return
      }
      case 'certificate': {
        const what = `${step.bound ? 'token bound to a certificate' : 'token not bound'}, ${step.presented ? 'certificate presented' : 'no certificate'}`
        say('certificate', step.failure === null ? `pass (${what})` : `${what}: ${denial(step.failure)}`)
        return
      }
      case 'dpop': {
        const result = step.failure === null ? 'pass' : denial(step.failure)
        say('dpop', step.scheme === 'Bearer' ? `Bearer scheme: ${result}` : `proof ${step.jkt === null ? '' : `key ${step.jkt} `}${result}`)
        return
      }
      default: say(step.stage, step.failure === null ? 'pass' : denial(step.failure))
    }
  }
}

export async function explain (config: CompiledConfig, input: ExplainInput): Promise<Explanation> {
  const lines: string[] = []
  // Labels up to 9 characters line up; a longer one (`introspect`) keeps a space before its text.
  const say = (step: string, text: string): void => { lines.push(`${step.padEnd(9)} ${text}`) }
  const record = stepWriter(input, say)

  say('request', `${input.method} ${input.path} from ${input.ip}${input.host === undefined ? '' : ` for host ${input.host}`}`)
  let engine: Engine = input.engine ?? buildEngine(config, null)
  const authorization = [...(input.authorization ?? [])]
  if (input.claims !== undefined) {
    engine = { ...engine, verifier: claimsVerifier(config, input.claims) }
    authorization.push(CLAIMS_BEARER)
  } else if (input.token !== undefined) {
    authorization.push(`${input.dpop === undefined ? 'Bearer' : 'DPoP'} ${input.token}`)
  }

  const decided = decideKnown(engine, { method: input.method.toUpperCase(), target: input.path, authorization, clientIp: input.ip, host: input.host, dpop: input.dpop, certificateThumbprint: input.certificateThumbprint }, record)
  let decision: Decision
  if (decided instanceof PendingDecision) {
    // A token to verify: only now are the issuers' keys fetched, as the gateway does at start.
    await loadKeys(engine)
    decision = await decidePending(decided)
  } else {
    decision = decided
  }

  if (!decision.allowed) {
    say('decision', denial(decision.error))
    return { lines, allowed: false, decision }
  }
  const limit = decision.route.rateLimit
  if (limit !== null) {
    // Shown, not spent: explain never touches a bucket (docs/rate-limits.md).
    say('ratelimit', `${limit.limit} per ${limit.windowMs / 1000}s (store ${limit.store}, on store error ${limit.onStoreError}); ` +
      `bucket ${describeRateLimitKey(limit, decision.route, decision.token, input.ip)}`)
  }
  for (const [name, value] of Object.entries(decision.headers)) say('header', `${name}: ${value}`)
  say('header', `authorization: ${decision.route.forward.authorization}`)
  say('decision', decision.audit === null ? 'ALLOW' : `ALLOW (audit mode; enforce would answer ${denial(decision.audit)})`)
  return { lines, allowed: true, decision }
}
