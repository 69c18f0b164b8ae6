/**
 * The DPoP stage (RFC 9449, docs/dpop.md), between the token and the policy: which scheme the token came
 * with, and whether that is enough.
 *
 * - `Authorization: DPoP <token>`: the proof must pass every check of `verify-dpop-proof.ts`, the token must
 *   be bound (`cnf.jkt`) to the proof's key, and the proof's `jti` must be new (`dpop-replay.ts`).
 * - `Authorization: Bearer <token>`: refused when the token is DPoP-bound (§7.1: a bound token is worth
 *   nothing without its key, so one sent as Bearer was taken from its holder), or when the route or the
 *   token's issuer requires DPoP.
 *
 * A cached token still needs its proof checked on every request: the proof is per request, the token is
 * not. Only the replay store may answer later (Redis), so the result is a failure, null, or a promise of one.
 */
import type { Redis } from 'ioredis'
import type { CompiledConfig, CompiledRoute } from '../config/types.js'
import { GatewayError, toGatewayError } from '../shared/errors.js'
import type { DpopNonces } from '../token/dpop-nonce.js'
import type { ReplayStore, ReplayVerdict } from '../token/dpop-replay.js'
import { invalidProof, verifyDpopProof, type ProofRequest } from '../token/verify-dpop-proof.js'
import type { VerifiedToken } from '../token/verified-token.js'

/** What the DPoP stage found: the scheme, the proof key when one was accepted, and the failure if any. */
export interface DpopStep {
  stage: 'dpop'
  scheme: 'Bearer' | 'DPoP'
  /** The proof key's thumbprint, when the proof verified. */
  jkt: string | null
  failure: GatewayError | null
}

/** The DPoP state of an engine: carried over a reload while its config is unchanged (see `engine.ts`). */
export interface DpopParts {
  replay: ReplayStore
  /** The engine's own Redis client behind `replay`, closed on shutdown; null for the memory store or a gateway's shared client. */
  redis: Redis | null
  nonces: DpopNonces | null
  now: () => number
}

/** Whether this route, for this token, needs DPoP. */
export function dpopRequired (route: CompiledRoute, token: VerifiedToken | null): boolean {
  return route.requireDpop || token?.issuer.requireDpop === true || token?.jkt != null
}

function replayFailure (config: CompiledConfig, verdict: ReplayVerdict): GatewayError | null {
  if (verdict === 'fresh') return null
  if (verdict === 'replayed') return invalidProof(config.dpop, 'dpop_proof_replayed', 'the DPoP proof was already used')
  if (config.dpop.replay.onStoreFailure === 'allow') return null
  return new GatewayError(503, 'temporarily_unavailable', 'dpop_replay_store_unavailable',
    'DPoP proofs cannot be checked for replay right now', { retryAfter: 1, dpop: { algs: config.dpop.algs } })
}

/** A token sent as Bearer: refused when it is DPoP-bound, or when the route or its issuer requires DPoP. */
export function checkBearer (config: CompiledConfig, route: CompiledRoute, token: VerifiedToken): GatewayError | null {
  if (token.jkt !== null) {
    return new GatewayError(401, 'invalid_token', 'dpop_bound_token_as_bearer', 'a DPoP-bound token must be sent with the DPoP scheme and a proof',
      { dpop: { algs: config.dpop.algs } })
  }
  if (route.requireDpop || token.issuer.requireDpop) {
    return new GatewayError(401, 'invalid_token', 'dpop_required', 'this resource requires a DPoP-bound token and proof',
      { dpop: { algs: config.dpop.algs } })
  }
  return null
}

/**
 * A token sent with the DPoP scheme: its proof, its binding, and the proof's first use. A synchronous
 * answer unless the replay store is Redis.
 */
export interface ProofOutcome {
  /** The proof key's thumbprint, when the proof verified. */
  jkt: string | null
  /** The failure; a promise of it while a Redis replay check is under way. */
  failure: GatewayError | null | Promise<GatewayError | null>
}

export function checkProof (config: CompiledConfig, parts: DpopParts, token: VerifiedToken, request: ProofRequest): ProofOutcome {
  let proof
  try {
    proof = verifyDpopProof(request, config.dpop, parts.now(), parts.nonces)
  } catch (err) {
    return { jkt: null, failure: toGatewayError(err) }
  }
  if (token.jkt !== proof.jkt) {
    const detail = token.jkt === null ? 'the token has no cnf.jkt' : 'cnf.jkt is not the proof key\'s thumbprint'
    return { jkt: proof.jkt, failure: new GatewayError(401, 'invalid_token', 'dpop_binding_mismatch', 'the token is not bound to the DPoP proof key', { detail, dpop: { algs: config.dpop.algs } }) }
  }
  const verdict = parts.replay.claim(proof.jkt, proof.jti, proof.acceptableUntil)
  return { jkt: proof.jkt, failure: verdict instanceof Promise ? verdict.then((v) => replayFailure(config, v)) : replayFailure(config, verdict) }
}
