/**
 * The decision engine, shared by the proxy and forward-auth: normalize the target, match a route,
 * extract and verify the token, apply the route's policy, and say what to forward. It knows nothing of
 * HTTP frameworks: it takes plain values and returns a plain `Decision`.
 *
 * Two calls, one shape each. `decideKnown` answers synchronously whenever it can (no token needed, or one
 * the verifier's caches know, good or bad): it never throws and never allocates a promise. Only a token
 * that must be verified afresh yields a `PendingDecision`, which `decidePending` settles; its promise
 * never rejects. `decide` chains the two for callers that await anyway.
 *
 * An optional recorder is told what each stage found (`scopegate explain`); without one, no step is built.
 */
import type { CompiledRoute } from '../config/types.js'
import type { Engine } from './engine.js'
import { GatewayError, deny, toGatewayError } from '../shared/errors.js'
import { identityHeaders } from '../forward/identity-headers.js'
import { applyNetworkPolicy, applyPolicy, applyRequestConditions, type PolicyStep } from '../policy/apply-policy.js'
import { narrowScopes } from '../policy/narrow-scopes.js'
import { extractToken } from '../request/extract-token.js'
import { normalizeTarget } from '../request/normalize-path.js'
import { requestHost } from '../routing/match-host.js'
import type { VerifiedToken } from '../token/verified-token.js'
import { TokenMiss } from '../token/verify-token.js'
import { IntrospectionMiss } from '../token/introspect-token.js'
import { extractDpopToken } from '../request/extract-dpop-token.js'
import type { ProofRequest } from '../token/verify-dpop-proof.js'
import { checkBearer, checkProof, dpopRequired, type DpopStep } from './check-dpop.js'
import { certificateBindingApplies, checkCertificateBinding, type CertificateStep } from './check-certificate-binding.js'

export interface DecisionInput {
  method: string
  /** The raw request-target: path and query as received. */
  target: string
  /** Every Authorization header value received. */
  authorization: readonly string[]
  clientIp: string
  /**
   * The host the request names, as received (a Host header, or an ingress's original host), port and
   * case included; absent: none, and only routes without `match.host` match.
   */
  host?: string
  /** What a DPoP proof is checked against (docs/dpop.md); absent: no proof can be checked. */
  dpop?: DpopInput
  /**
   * The base64url SHA-256 thumbprint of the client certificate's DER (RFC 8705 §3.1), when the request
   * came with one: the verified certificate of an mTLS proxy listener, Envoy's `source.certificate` or a
   * trusted ingress's header (docs/tls.md#certificate-bound-tokens-rfc-8705). Absent: no certificate.
   */
  certificateThumbprint?: string
}

/** The request as the conditions that read it see it; built only for routes that have such conditions. */
interface Request {
  method: string
  host: string
  path: string
  clientIp: string
  /** The client certificate's thumbprint, for the certificate stage; the conditions do not read it. */
  certificate?: string
}

/** The request's DPoP headers and its own origin, as the HTTP layer received them. */
export interface DpopInput {
  /** Every `DPoP` header value received. */
  proofs: readonly string[]
  /** `scheme://host[:port]` as received (see `request/request-origin.ts`); null when it cannot be known. */
  origin: string | null
}

interface DecisionBase {
  route: CompiledRoute | null
  /** The normalized path, or null when the target was rejected. */
  path: string | null
  token: VerifiedToken | null
  /** The narrowed scopes (empty when anonymous or denied before narrowing). */
  scopes: readonly string[]
  /** How the token was judged, for the decision log; absent when no token was looked up. */
  tokenPath?: TokenPath
}

/** `jwt`: verified now; `introspection`: asked of the issuer now; `cache`: a verdict remembered (either kind). */
export type TokenPath = 'jwt' | 'introspection' | 'cache'

export interface Allow extends DecisionBase {
  allowed: true
  route: CompiledRoute
  path: string
  /** The query as received, with its leading `?`, or ''. */
  query: string
  /** Identity headers to set (lower-case names). */
  headers: Record<string, string>
  /** In audit mode, the denial that enforce mode would have answered. */
  audit: GatewayError | null
}

export interface Deny extends DecisionBase {
  allowed: false
  error: GatewayError
}

export type Decision = Allow | Deny

/**
 * What a stage found, in pipeline order: the normalized path, the route matched, the token (null:
 * anonymous or not looked at; `failure` when it did not verify), then the policy's stages.
 */
export type Step =
  | { stage: 'path', path: string }
  | { stage: 'route', route: CompiledRoute, host: string }
  | { stage: 'token', token: VerifiedToken | null, failure: GatewayError | null, via?: TokenPath }
  | CertificateStep
  | DpopStep
  | PolicyStep

/** Told each stage's outcome as the pipeline runs (see `explain.ts`). */
export type Recorder = (step: Step) => void

/** A request on a route whose token must be verified afresh: settled by `decidePending`. */
export class PendingDecision {
  readonly engine: Engine
  readonly route: CompiledRoute
  readonly path: string
  readonly query: string
  readonly clientIp: string
  /** The token to verify; null when the token is known and only its DPoP proof's replay check is pending. */
  readonly miss: TokenMiss | null
  readonly record: Recorder | undefined
  readonly method: string
  /** As routes compare it (see `requestHost`). */
  readonly host: string
  /** The proof to check once the token is verified: null for a Bearer token. */
  readonly proof: ProofRequest | null
  /** The decision already under way (a replay check in Redis), when `miss` is null. */
  readonly settling: Promise<Decision> | null
  /** The client certificate's thumbprint, for a certificate-bound token (`DecisionInput.certificateThumbprint`). */
  readonly certificate: string | undefined

  constructor (engine: Engine, route: CompiledRoute, path: string, query: string, clientIp: string, miss: TokenMiss | null, record: Recorder | undefined,
    method: string, host: string, proof: ProofRequest | null = null, settling: Promise<Decision> | null = null, certificate?: string) {
    this.engine = engine
    this.route = route
    this.path = path
    this.query = query
    this.clientIp = clientIp
    this.miss = miss
    this.record = record
    this.method = method
    this.host = host
    this.proof = proof
    this.settling = settling
    this.certificate = certificate
  }
}

/** A denial on a matched route; in audit mode, the request goes through with the denial noted. */
function denied (error: GatewayError, route: CompiledRoute, path: string, query: string, token: VerifiedToken | null, clientIp: string): Decision {
  if (route.mode !== 'audit') return { allowed: false, error, route, path, token, scopes: [] }
  // Audit mode forwards what enforce mode would deny; the upstream sees the identity that was proven, if any.
  const scopes = token === null ? [] : narrowScopes({ policy: route.policy, clientIp, token })
  return { allowed: true, route, path, query, token, scopes, headers: identityHeaders(route, token, scopes), audit: error }
}

/** The decision once the token is known (null: anonymous). */
function settle (engine: Engine, route: CompiledRoute, path: string, query: string, token: VerifiedToken | null, clientIp: string,
  record: Recorder | undefined, request: Request): Decision {
  try {
    if (token === null) {
      const scopes = applyPolicy({ policy: route.policy, clientIp, token }, record)
      return { allowed: true, route, path, query, token, scopes, headers: identityHeaders(route, token, scopes), audit: null }
    }
    applyNetworkPolicy({ policy: route.policy, clientIp, token }, record)
  } catch (err) {
    return denied(toGatewayError(err), route, path, query, token, clientIp)
  }
  const { scopes, headers, error } = engine.outcomes.of(route, token, clientIp, record)
  if (error !== null) return denied(error, route, path, query, token, clientIp)
  if (route.policy.conditions.request.length > 0) {
    try {
      applyRequestConditions({ policy: route.policy, clientIp, token }, { ...request, nowMs: engine.now() }, record)
    } catch (err) {
      return denied(toGatewayError(err), route, path, query, token, clientIp)
    }
  }
  return { allowed: true, route, path, query, token, scopes, headers, audit: null }
}

/**
 * The decision, at once, when the request needs no token or carries one the verifier's caches know
 * (good or bad); a `PendingDecision` when its token must be verified afresh (a JWKS fetch may be under
 * way). Never throws, never allocates a promise: every failure is a `Deny`.
 */
export function decideKnown (engine: Engine, input: DecisionInput, record?: Recorder): Decision | PendingDecision {
  let path: string
  let query: string
  try {
    ({ path, query } = normalizeTarget(input.target))
  } catch (err) {
    return { allowed: false, error: toGatewayError(err), route: null, path: null, token: null, scopes: [] }
  }
  record?.({ stage: 'path', path })
  const host = requestHost(input.host)
  const route = engine.routes.match(input.method, path, host)
  if (route === null) {
    return { allowed: false, error: deny.noRoute(`${input.method} ${host}${path}`), route: null, path, token: null, scopes: [] }
  }
  record?.({ stage: 'route', route, host })
  const { clientIp } = input
  const request: Request = { method: input.method, host, path, clientIp, certificate: input.certificateThumbprint }
  if (route.auth === 'none') {
    record?.({ stage: 'token', token: null, failure: null })
    return settle(engine, route, path, query, null, clientIp, record, request)
  }

  let bearer: string | null
  let proof: ProofRequest | null = null
  try {
    bearer = extractDpopToken(input.authorization, query)
    if (bearer !== null) proof = { proofs: input.dpop?.proofs ?? [], origin: input.dpop?.origin ?? null, method: input.method, path, token: bearer }
    else bearer = extractToken(input.authorization, query)
  } catch (err) {
    const failure = toGatewayError(err)
    record?.({ stage: 'token', token: null, failure })
    return denied(failure, route, path, query, null, clientIp)
  }
  if (bearer === null) {
    const failure = route.auth === 'required' ? tokenMissing(engine, route) : null
    record?.({ stage: 'token', token: null, failure })
    return failure === null ? settle(engine, route, path, query, null, clientIp, record, request) : denied(failure, route, path, query, null, clientIp)
  }
  const found = engine.verifier.lookup(bearer)
  if (found instanceof TokenMiss) return new PendingDecision(engine, route, path, query, clientIp, found, record, input.method, host, proof, null, input.certificateThumbprint)
  if (found instanceof GatewayError) {
    record?.({ stage: 'token', token: null, failure: found, via: 'cache' })
    return via(denied(found, route, path, query, null, clientIp), 'cache')
  }
  record?.({ stage: 'token', token: found, failure: null, via: 'cache' })
  const decided = settleBound(engine, route, path, query, found, clientIp, record, proof, request)
  if (!(decided instanceof Promise)) return via(decided, 'cache')
  return new PendingDecision(engine, route, path, query, clientIp, null, record, input.method, host, proof, decided.then((d) => via(d, 'cache')), input.certificateThumbprint)
}

/** The decision, marked with how its token was judged. */
function via (decision: Decision, path: TokenPath): Decision {
  decision.tokenPath = path
  return decision
}

/** The decision once the pending token is verified, under the engine it was pending on. Never rejects. */
export async function decidePending (pending: PendingDecision): Promise<Decision> {
  const { engine, route, path, query, clientIp, record, method, host } = pending
  if (pending.miss === null) return await (pending.settling as Promise<Decision>)
  const tokenPath: TokenPath = pending.miss instanceof IntrospectionMiss ? 'introspection' : 'jwt'
  let token: VerifiedToken
  try {
    token = await engine.verifier.verifyMiss(pending.miss)
  } catch (err) {
    const failure = toGatewayError(err)
    record?.({ stage: 'token', token: null, failure, via: tokenPath })
    return via(denied(failure, route, path, query, null, clientIp), tokenPath)
  }
  record?.({ stage: 'token', token, failure: null, via: tokenPath })
  return via(await settleBound(engine, route, path, query, token, clientIp, record, pending.proof, { method, host, path, clientIp, certificate: pending.certificate }), tokenPath)
}

/** 401 without credentials; on a route that requires DPoP, challenged with the DPoP scheme. */
function tokenMissing (engine: Engine, route: CompiledRoute): GatewayError {
  const missing = deny.tokenMissing()
  if (!route.requireDpop) return missing
  return new GatewayError(missing.status, missing.code, missing.reason, missing.description, { dpop: { algs: engine.config.dpop.algs } })
}

/**
 * The certificate stage (check-certificate-binding.ts), the DPoP stage (check-dpop.ts), then the policy:
 * a certificate-bound token must come with its certificate, a Bearer token must not need DPoP, a DPoP
 * token must come with a good, bound, unused proof. A promise only while a Redis replay check is under way.
 */
function settleBound (engine: Engine, route: CompiledRoute, path: string, query: string, token: VerifiedToken, clientIp: string,
  record: Recorder | undefined, proof: ProofRequest | null, request: Request): Decision | Promise<Decision> {
  if (certificateBindingApplies(route, token)) {
    const failure = checkCertificateBinding(route, token, request.certificate)
    record?.({ stage: 'certificate', bound: token.x5t !== null, presented: request.certificate !== undefined, failure })
    if (failure !== null) return denied(failure, route, path, query, token, clientIp)
  }
  if (proof === null) {
    if (!dpopRequired(route, token)) return settle(engine, route, path, query, token, clientIp, record, request)
    const failure = checkBearer(engine.config, route, token)
    record?.({ stage: 'dpop', scheme: 'Bearer', jkt: null, failure })
    if (failure !== null) return denied(failure, route, path, query, token, clientIp)
    return settle(engine, route, path, query, token, clientIp, record, request)
  }
  const { jkt, failure } = checkProof(engine.config, engine.dpop, token, proof)
  const then = (found: GatewayError | null): Decision => {
    record?.({ stage: 'dpop', scheme: 'DPoP', jkt, failure: found })
    return found === null ? settle(engine, route, path, query, token, clientIp, record, request) : denied(found, route, path, query, token, clientIp)
  }
  return failure instanceof Promise ? failure.then(then) : then(failure)
}

/** `decideKnown`, then `decidePending` if needed: for callers that await anyway. Never rejects. */
export async function decide (engine: Engine, input: DecisionInput, record?: Recorder): Promise<Decision> {
  const decided = decideKnown(engine, input, record)
  return decided instanceof PendingDecision ? await decidePending(decided) : decided
}
