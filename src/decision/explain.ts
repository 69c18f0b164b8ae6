/**
 * `scopegate explain`: runs one request through the same stages as the gateway and says what each
 * decided. With a token, the signature is verified against the issuer's real keys; with a claims file,
 * signature and expiry are skipped, and the output says so.
 */
import type { CompiledConfig } from '../config/types.js'
import { buildEngine, loadKeys } from './engine.js'
import { GatewayError, toGatewayError } from '../shared/errors.js'
import { identityHeaders } from '../forward/identity-headers.js'
import { POLICY_CHECKS } from '../policy/apply-policy.js'
import { narrowScopes } from '../policy/narrow-scopes.js'
import { requireScopes } from '../policy/require-scopes.js'
import { normalizeTarget } from '../request/normalize-path.js'
import { identityClaims } from '../token/claims.js'
import type { JwtPayload } from '../token/parse-jwt.js'
import { verifiedToken, type VerifiedToken } from '../token/verify-token.js'

export interface ExplainInput {
  method: string
  path: string
  ip: string
  token?: string
  claims?: JwtPayload
}

export interface Explanation {
  lines: string[]
  allowed: boolean
}

function denial (err: GatewayError): string {
  return `DENY ${err.status} ${err.code} (${err.reason}): ${err.description}${err.detail === undefined ? '' : ` [${err.detail}]`}`
}

/** A token built from a claims file, for explaining a policy without a signed token. */
function tokenFromClaims (config: CompiledConfig, claims: JwtPayload): VerifiedToken {
  const issuer = typeof claims.iss === 'string' ? config.issuersByIss.get(claims.iss) : undefined
  const fallback = config.issuersById.size === 1 ? [...config.issuersById.values()][0] : undefined
  const chosen = issuer ?? fallback
  if (chosen === undefined) {
    throw new GatewayError(401, 'invalid_token', 'token_issuer_unknown', 'the token issuer is not accepted', { detail: `iss ${JSON.stringify(claims.iss)} is not configured` })
  }
  const placeholderKey = { kid: '', key: undefined as never, algorithms: new Set<string>() }
  return verifiedToken(identityClaims(claims, chosen.claims), chosen, claims, Number(claims.exp ?? 0), placeholderKey, 0)
}

export async function explain (config: CompiledConfig, input: ExplainInput): Promise<Explanation> {
  const lines: string[] = []
  const say = (step: string, text: string): void => { lines.push(`${step.padEnd(10)}${text}`) }
  const finish = (allowed: boolean, text: string): Explanation => {
    say('decision', text)
    return { lines, allowed }
  }

  say('request', `${input.method} ${input.path} from ${input.ip}`)
  let path: string
  try {
    path = normalizeTarget(input.path).path
    say('path', path === input.path.split('?')[0] ? `${path} (already normalized)` : `normalized to ${path}`)
  } catch (err) {
    return finish(false, denial(toGatewayError(err)))
  }

  const engine = buildEngine(config, null)
  const route = engine.routes.match(input.method.toUpperCase(), path)
  if (route === null) return finish(false, 'DENY 404 no_route: no route matches this request')
  say('route', `${route.id} (${route.prefix ? 'prefix' : 'exact'} ${route.path}${route.methods === null ? '' : `, ${[...route.methods].join(' ')}`}) -> upstream ${route.upstream.id} ${route.upstream.base}; auth ${route.auth}, mode ${route.mode}`)

  let token: VerifiedToken | null = null
  if (route.auth === 'none') {
    say('token', 'not checked (auth: none)')
  } else if (input.claims !== undefined) {
    try {
      token = tokenFromClaims(config, input.claims)
    } catch (err) {
      return finish(false, denial(toGatewayError(err)))
    }
    say('token', `from claims: signature and expiry NOT checked; issuer ${token.issuer.id}`)
  } else if (input.token !== undefined) {
    await loadKeys(engine)
    try {
      token = await engine.verifier.verify(input.token)
      say('token', `verified: issuer ${token.issuer.id}, signature ok, expires ${new Date(token.expiresAt * 1000).toISOString()}`)
    } catch (err) {
      say('token', denial(toGatewayError(err)))
      return finish(false, denial(toGatewayError(err)))
    }
  } else if (route.auth === 'required') {
    return finish(false, 'DENY 401 unauthorized: a bearer token is required')
  } else {
    say('token', 'none: anonymous (auth: optional)')
  }
  if (token !== null) {
    say('identity', `sub ${token.subject ?? '-'}, client ${token.clientId ?? '-'}, roles [${token.roles.join(' ')}], aud [${token.audiences?.join(' ') ?? 'missing'}]`)
    say('scopes', `token asks for [${token.scopes.join(' ')}]`)
  }

  const policyInput = { policy: route.policy, clientIp: input.ip, token }
  let failure: GatewayError | null = null
  for (const [name, check] of POLICY_CHECKS) {
    try {
      check(policyInput)
      say(name, 'pass')
    } catch (err) {
      failure = toGatewayError(err)
      say(name, denial(failure))
      break
    }
  }
  let scopes: readonly string[] = []
  if (failure === null && token !== null) {
    scopes = narrowScopes(policyInput)
    say('narrow', `[${token.scopes.join(' ')}] -> [${scopes.join(' ')}]`)
    try {
      requireScopes(route.policy, scopes)
      const { require, match } = route.policy.scopes
      say('require', require.length === 0 ? 'nothing required' : `pass (${match} of [${require.join(' ')}])`)
    } catch (err) {
      failure = toGatewayError(err)
      say('require', denial(failure))
    }
  }

  if (failure !== null && route.mode === 'enforce') return finish(false, denial(failure))
  const headers = identityHeaders(route, token, scopes)
  for (const [name, value] of Object.entries(headers)) say('header', `${name}: ${value}`)
  say('header', `authorization: ${route.forward.authorization}`)
  if (failure !== null) return finish(true, `ALLOW (audit mode; enforce would answer ${denial(failure)})`)
  return finish(true, 'ALLOW')
}
