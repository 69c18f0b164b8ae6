/**
 * Why the hot path verifies signatures with node:crypto rather than jose: verifications per second of
 * one signed token, for every algorithm a config may pin, both ways, in the same run.
 *
 * - node:crypto: what the verifier does for a token it has not seen, `parseJwt` + `verifySignature` with a
 *   `KeyObject` prepared once (as `keys/import-jwk.ts` prepares it);
 * - jose: `compactVerify(token, key, { algorithms: [alg] })` with a `CryptoKey` imported once (as
 *   `createRemoteJWKSet` caches it), awaited one at a time, as one request would.
 *
 * Both ways run in alternating slices (ABBA), so they see the same host load; reported per algorithm as
 * verifications per second of wall time and of CPU time (the whole process, so jose's WebCrypto work on
 * the thread pool is counted), and as ratios node:crypto ÷ jose. On a shared host the raw figures move;
 * the ratios are the result.
 *
 * Bounded: BENCH_MICRO_ROUNDS (default 2, at most 5) ABBA rounds of BENCH_MICRO_SLICE_MS (default 150,
 * at most 1000) per slice, after one warm-up slice each: about 15 s in all with the defaults.
 * Run with `npm run bench:micro` (build, `tsc -p bench`, `node bench-dist/verify-micro.js`); it imports the
 * built `dist/`, as the gateway runs it.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { CompactSign, compactVerify, importJWK, type CryptoKey } from 'jose'
import { JWS_ALGORITHMS } from '../dist/config/schema.js'
import { parseJwt } from '../dist/token/parse-jwt.js'
import { verifySignature } from '../dist/token/verify-signature.js'

const ROUNDS = Math.min(5, Math.max(1, Math.round(Number(process.env.BENCH_MICRO_ROUNDS ?? 2))))
const SLICE_MS = Math.min(1000, Math.max(50, Math.round(Number(process.env.BENCH_MICRO_SLICE_MS ?? 150))))
/** Verifications between two looks at the clock. */
const BATCH = 20

interface Tally {
  ops: number
  /** Milliseconds of wall time. */
  wallMs: number
  /** Microseconds of process CPU time (user + system, every thread). */
  cpuUs: number
}

function keyPair (alg: string): { privateKey: KeyObject, publicKey: KeyObject } {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return generateKeyPairSync('rsa', { modulusLength: 2048 })
  if (alg === 'ES256') return generateKeyPairSync('ec', { namedCurve: 'P-256' })
  if (alg === 'ES384') return generateKeyPairSync('ec', { namedCurve: 'P-384' })
  if (alg === 'ES512') return generateKeyPairSync('ec', { namedCurve: 'P-521' })
  return generateKeyPairSync('ed25519')
}

/** Runs `verify` in batches for one slice; every verification must succeed. */
async function slice (verify: () => boolean | Promise<boolean>): Promise<Tally> {
  const cpu = process.cpuUsage()
  const start = performance.now()
  let ops = 0
  let now = start
  while (now - start < SLICE_MS) {
    for (let i = 0; i < BATCH; i++) {
      if (!(await verify())) throw new Error('a verification failed: the benchmark would measure a failure path')
    }
    ops += BATCH
    now = performance.now()
  }
  const used = process.cpuUsage(cpu)
  return { ops, wallMs: now - start, cpuUs: used.user + used.system }
}

function add (a: Tally, b: Tally): Tally {
  return { ops: a.ops + b.ops, wallMs: a.wallMs + b.wallMs, cpuUs: a.cpuUs + b.cpuUs }
}

const perSecond = (t: Tally): number => t.ops / (t.wallMs / 1000)
const perCpuSecond = (t: Tally): number => t.ops / (t.cpuUs / 1e6)

async function main (): Promise<void> {
  process.stdout.write(`verify-micro: ${ROUNDS} ABBA round(s) of ${SLICE_MS} ms slices per algorithm; Node ${process.version}\n\n`)
  process.stdout.write('| alg | node:crypto verif/s | jose verif/s | ratio (wall) | ratio (CPU) |\n|---|---:|---:|---:|---:|\n')
  for (const alg of JWS_ALGORITHMS) {
    const { privateKey, publicKey } = keyPair(alg)
    const token = await new CompactSign(Buffer.from(JSON.stringify({ iss: 'https://idp.bench', sub: 'alice', aud: 'https://api.bench', scope: 'read write', exp: 2_000_000_000 })))
      .setProtectedHeader({ alg, typ: 'at+jwt', kid: 'k1' }).sign(privateKey)
    const jwk = { ...publicKey.export({ format: 'jwk' }), alg }
    const cryptoKey = await importJWK(jwk, alg) as CryptoKey

    const viaNode = (): boolean => {
      const { header, signingInput, signature } = parseJwt(token)
      return header.alg === alg && verifySignature(alg, publicKey, signingInput, signature)
    }
    const viaJose = async (): Promise<boolean> => {
      await compactVerify(token, cryptoKey, { algorithms: [alg] })
      return true
    }

    await slice(viaNode)
    await slice(viaJose)
    let node: Tally = { ops: 0, wallMs: 0, cpuUs: 0 }
    let jose: Tally = { ops: 0, wallMs: 0, cpuUs: 0 }
    for (let round = 0; round < ROUNDS; round++) {
      node = add(node, await slice(viaNode))
      jose = add(jose, await slice(viaJose))
      jose = add(jose, await slice(viaJose))
      node = add(node, await slice(viaNode))
    }
    process.stdout.write(`| ${alg} | ${perSecond(node).toFixed(0)} | ${perSecond(jose).toFixed(0)} | ` +
      `${(perSecond(node) / perSecond(jose)).toFixed(2)} | ${(perCpuSecond(node) / perCpuSecond(jose)).toFixed(2)} |\n`)
  }
}

await main()
