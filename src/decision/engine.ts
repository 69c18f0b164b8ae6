/**
 * Builds everything one compiled config needs at request time: the route table, a key store per
 * issuer, the token cache, the verifier and the memo of policy outcomes. A reload builds a new engine
 * and swaps one reference; key stores whose key source did not change are carried over, so a reload
 * never refetches them.
 */
import type { Redis } from 'ioredis'
import type { CompiledConfig, CompiledIssuer, CompiledRedis } from '../config/types.js'
import type { FetchLike } from '../keys/fetch-json.js'
import { KeyStore, type KeyStoreEvents } from '../keys/key-store.js'
import { buildRouteTable, type RouteTable } from '../routing/route-table.js'
import { FAILURE_CACHE_DEFAULTS, FailureCache, TOKEN_CACHE_DEFAULTS, TokenCache, type TokenCacheOptions } from '../token/token-cache.js'
import { TokenVerifier, type Verifier } from '../token/verify-token.js'
import { IntrospectingVerifier, type IntrospectionListener } from '../token/introspect-token.js'
import { PolicyOutcomes } from './policy-outcome.js'
import { createRedis } from '../state/redis.js'
import { DpopNonces } from '../token/dpop-nonce.js'
import { MemoryReplayStore, RedisReplayStore } from '../token/dpop-replay.js'
import type { DpopParts } from './check-dpop.js'

export interface Engine {
  config: CompiledConfig
  routes: RouteTable
  verifier: Verifier
  keyStores: ReadonlyMap<string, KeyStore>
  tokenCache: TokenCache
  /** What each route's policy made of each cached token; this engine's alone (see policy-outcome.ts). */
  outcomes: PolicyOutcomes
  /** The introspecting verifier, when an issuer introspects (docs/opaque-tokens.md); for `/readyz`. */
  introspection?: IntrospectingVerifier
  /** Milliseconds since the epoch: the clock conditions read (`now`, `maxAge`); injected by tests. */
  now: () => number
  /** The DPoP replay store and nonces (see check-dpop.ts). */
  dpop: DpopParts
}

export interface EngineOptions {
  fetch?: FetchLike
  /** The fetch of one issuer's key store and introspection client, when it differs from `fetch` (tracing wraps it). */
  fetchFor?: (issuer: CompiledIssuer) => FetchLike
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number
  keyEvents?: KeyStoreEvents
  tokenCache?: Partial<Omit<TokenCacheOptions, 'now'>>
  /** Told of every introspection call (docs/opaque-tokens.md). */
  introspectionEvents?: IntrospectionListener
  /**
   * The process's Redis client for a redis section (a gateway's `RedisClients`), which the engine uses
   * but does not close. Absent (`scopegate explain`, `test`): the engine makes its own, lazily.
   */
  redisFor?: (config: CompiledRedis) => Redis
}

/** Where an issuer's keys come from: while it is unchanged, a reload keeps the keys already fetched. */
function keySource (issuer: CompiledIssuer): string {
  return JSON.stringify([issuer.id, issuer.issuer, issuer.keys])
}

/**
 * The DPoP state, carried over from the previous engine while its settings are unchanged: a reload must not
 * forget the proofs already accepted (they could be replayed) nor the nonce secret (nonces handed out
 * would be refused). The memory store is built only when a route could see a DPoP token; it is cheap anyway.
 */
function dpopParts (config: CompiledConfig, previous: DpopParts | null, previousConfig: CompiledConfig | null, now: () => number,
  redisFor: EngineOptions['redisFor']): DpopParts {
  const { replay, nonce } = config.dpop
  const same = (pick: (c: CompiledConfig) => unknown): boolean => previousConfig !== null && JSON.stringify(pick(previousConfig)) === JSON.stringify(pick(config))
  const keepStore = previous !== null && same((c) => [c.dpop.replay.store, c.dpop.replay.maxEntries, c.dpop.replay.store === 'redis' ? c.redis : null])
  let store = keepStore ? previous.replay : null
  let redis = keepStore ? previous.redis : null
  if (store === null) {
    if (replay.store === 'redis' && config.redis !== null) {
      // The gateway's shared client (closed by the gateway), or one of this engine's own.
      const client = redisFor?.(config.redis) ?? createRedis(config.redis, { lazy: true })
      redis = redisFor === undefined ? client : null
      store = new RedisReplayStore(client, config.redis.keyPrefix, now)
    } else {
      store = new MemoryReplayStore(replay.maxEntries, now)
    }
  }
  // A Redis client of its own the new engine no longer uses is closed once the requests still using it have had their time.
  if (!keepStore && previous?.redis != null) {
    const old = previous.redis
    setTimeout(() => { void old.quit().catch(() => {}) }, 30_000).unref()
  }
  const keepNonces = previous !== null && same((c) => c.dpop.nonce)
  const nonces = keepNonces ? previous.nonces : nonce === null ? null : new DpopNonces(nonce.secret, nonce.windowMs, now)
  return { replay: store, redis, nonces, now }
}

export function buildEngine (config: CompiledConfig, previous: Engine | null, options: EngineOptions = {}): Engine {
  const now = options.now ?? Date.now
  const keyStores = new Map<string, KeyStore>()
  for (const issuer of config.issuersById.values()) {
    const old = previous?.keyStores.get(issuer.id)
    const fresh = (): KeyStore => new KeyStore(issuer, { fetch: options.fetchFor?.(issuer) ?? options.fetch, now, events: options.keyEvents })
    if (old === undefined || keySource(old.issuer) !== keySource(issuer)) keyStores.set(issuer.id, fresh())
    // Same source and same jwks options: the very same store. Other jwks options: a new store that adopts the keys.
    else if (JSON.stringify(old.issuer.jwks) === JSON.stringify(issuer.jwks)) keyStores.set(issuer.id, old)
    else keyStores.set(issuer.id, fresh().adopt(old))
  }
  const tokenCache = new TokenCache({ ...TOKEN_CACHE_DEFAULTS, ...options.tokenCache, now })
  const jwtVerifier = new TokenVerifier(config, keyStores, tokenCache, now, new FailureCache({ ...FAILURE_CACHE_DEFAULTS, now }))
  // Introspection wraps the JWT verifier only where an issuer has it: other configs keep the plain path.
  const introspection = [...config.issuersById.values()].some((issuer) => issuer.introspection !== undefined)
    ? new IntrospectingVerifier(jwtVerifier, config, { keyStores, fetch: options.fetch, fetchFor: options.fetchFor, now, listener: options.introspectionEvents, previous: previous?.introspection })
    : undefined
  return {
    config,
    routes: buildRouteTable(config.routes),
    verifier: introspection ?? jwtVerifier,
    keyStores,
    tokenCache,
    outcomes: new PolicyOutcomes(),
    now,
    dpop: dpopParts(config, previous?.dpop ?? null, previous?.config ?? null, now, options.redisFor),
    ...(introspection === undefined ? {} : { introspection })
  }
}

/** Start fetching keys for every store that has none yet; resolves when each has answered once. */
export async function loadKeys (engine: Engine): Promise<void> {
  await Promise.all([...engine.keyStores.values()].filter((s) => s.status().state === 'starting').map((s) => s.refresh()))
}
