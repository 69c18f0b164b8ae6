/**
 * One issuer's introspection endpoint as its calls found it (docs/opaque-tokens.md#when-the-endpoint-fails):
 * answering, or failing since when and with what; and the cooldown that follows a failure. While the
 * endpoint answers, every new token is introspected. Once a call fails, a new call is made at most once
 * per `introspection.cooldown`, counted from the last attempt (failed or not, as `jwks.cooldown` is for
 * keys), and never while one is under way: during an outage the IdP gets one call per cooldown per process
 * instead of one per request, and the clients their 503 at once instead of after `timeout`.
 *
 * It also remembers whether the endpoint has ever answered since the process started, for readiness: an
 * endpoint that fails and never answered is `unavailable` (the gateway is not ready, as with an issuer
 * whose keys were never fetched); one that answered before is `failing` (degraded, still ready). The
 * state outlives reloads that keep the issuer's endpoint and client (see `IntrospectingVerifier`).
 */
import type { FetchFailure } from '../keys/fetch-json.js'

/**
 * `unknown`: never called. `ok`: the last call was answered. `failing`: calls fail, the endpoint answered
 * before. `unavailable`: calls fail and the endpoint has not answered since start.
 */
export type IntrospectionState = 'unknown' | 'ok' | 'failing' | 'unavailable'

/** One issuer's introspection as `/readyz` shows it. */
export interface IntrospectionStatus {
  issuer: string
  state: IntrospectionState
  /** What the last failed call hit (timeout, network, status, …); absent while ok. */
  lastFailure?: FetchFailure
  /** Seconds since the calls started failing; absent while ok. */
  failingForSeconds?: number
}

export class IntrospectionHealth {
  /** The first failed call since the last answer (ms); null while answering. */
  private failingSince: number | null = null
  private lastFailure: FetchFailure | null = null
  /** When the last call started (ms): the cooldown's origin. */
  private attemptedAt = Number.NEGATIVE_INFINITY
  private calling = 0
  private answered = false

  /** Whether a call may start now: always while the endpoint answers; while it fails, one at a time, once per `cooldownMs`. */
  mayCall (now: number, cooldownMs: number): boolean {
    return this.failingSince === null || (this.calling === 0 && now - this.attemptedAt >= cooldownMs)
  }

  /** A call starts; `settled` ends it with the endpoint's answer (null) or what it failed with. */
  attempt (now: number): (failure: FetchFailure | null, at: number) => void {
    this.attemptedAt = now
    this.calling++
    let done = false
    return (failure, at) => {
      if (done) return
      done = true
      this.calling--
      if (failure === null) {
        this.failingSince = null
        this.lastFailure = null
        this.answered = true
      } else {
        this.failingSince ??= at
        this.lastFailure = failure
      }
    }
  }

  /** True while the endpoint fails: for the detail of a 503 answered without a call. */
  get failure (): FetchFailure | null {
    return this.lastFailure
  }

  state (): IntrospectionState {
    if (this.failingSince !== null) return this.answered ? 'failing' : 'unavailable'
    return this.answered ? 'ok' : 'unknown'
  }

  status (issuer: string, now: number): IntrospectionStatus {
    const state = this.state()
    if (this.failingSince === null || this.lastFailure === null) return { issuer, state }
    return { issuer, state, lastFailure: this.lastFailure, failingForSeconds: Math.floor((now - this.failingSince) / 1000) }
  }
}
