/**
 * Differential test of scopegate's own JWS verification (`parseJwt` + `verifySignature`, with the
 * algorithm pinned as an issuer pins it) against jose's `compactVerify` with `algorithms: [alg]`: for
 * every algorithm a config may pin, a valid token and its tampered variants (each segment, at its first,
 * a middle and its last character; substituted, replaced by a character outside base64url, deleted,
 * inserted; bit flips at the first, a middle and the last byte of the signature; and structural changes)
 * must be accepted by both or refused by both.
 *
 * One disagreement is intended and checked as such: a signature segment spelled differently but decoding
 * to the same bytes (non-zero unused bits, padding, whitespace), which jose's lenient decoding accepts
 * and scopegate refuses (only the canonical spelling, see parse-jwt.ts). Anything else fails the test.
 * Mutations come from a seeded generator, so a failure reproduces; the loop is bounded by the table.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import t from 'tap'
import { CompactSign, base64url, compactVerify } from 'jose'
import { JWS_ALGORITHMS } from '../../src/config/schema.js'
import { parseJwt } from '../../src/token/parse-jwt.js'
import { verifySignature } from '../../src/token/verify-signature.js'

const SEED = 0x5c09e6a7
const ROUNDS = 2
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const FOREIGN = ['=', '+', '/', ' ', '!', '.', '\n']

/** mulberry32: a small seeded generator, so every run draws the same mutations. */
function generator (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function keyPair (alg: string): { privateKey: KeyObject, publicKey: KeyObject } {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return generateKeyPairSync('rsa', { modulusLength: 2048 })
  if (alg === 'ES256') return generateKeyPairSync('ec', { namedCurve: 'P-256' })
  if (alg === 'ES384') return generateKeyPairSync('ec', { namedCurve: 'P-384' })
  if (alg === 'ES512') return generateKeyPairSync('ec', { namedCurve: 'P-521' })
  return generateKeyPairSync('ed25519')
}

/** Another algorithm the same key can sign with, if any (RS256 key → PS256 header, and so on). */
const SIBLING: Readonly<Record<string, string>> = {
  RS256: 'PS256', RS384: 'RS256', RS512: 'PS512', PS256: 'RS256', PS384: 'PS256', PS512: 'RS512', EdDSA: 'Ed25519', Ed25519: 'EdDSA'
}

async function sign (alg: string, key: KeyObject, payload: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  return new CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader({ alg, typ: 'at+jwt', kid: 'k1', ...header }).sign(key)
}

/** scopegate's answer: parsed, the header's alg the pinned one, and the signature verified. */
function scopegateAccepts (token: string, alg: string, key: KeyObject): boolean {
  let parsed
  try {
    parsed = parseJwt(token)
  } catch {
    return false
  }
  return parsed.header.alg === alg && verifySignature(alg, key, parsed.signingInput, parsed.signature)
}

async function joseAccepts (token: string, alg: string, key: KeyObject): Promise<boolean> {
  try {
    await compactVerify(token, key, { algorithms: [alg] })
    return true
  } catch {
    return false
  }
}

/** Whether `segment`, as jose decodes it, is the same bytes as `original`: a respelling, not a change. */
function sameBytes (segment: string, original: string): boolean {
  try {
    return Buffer.from(base64url.decode(segment)).equals(Buffer.from(base64url.decode(original)))
  } catch {
    return false
  }
}

type Mutation = [name: string, token: string]

function characterMutations (token: string, random: () => number): Mutation[] {
  const parts = token.split('.')
  const out: Mutation[] = []
  const pick = (chars: string | readonly string[], not: string): string => {
    for (let i = 0; i < 16; i++) {
      const c = chars[Math.floor(random() * chars.length)] ?? 'A'
      if (c !== not) return c
    }
    return not === 'A' ? 'B' : 'A'
  }
  for (const [s, segmentName] of ['header', 'payload', 'signature'].entries()) {
    const segment = parts[s] ?? ''
    const positions: Array<[string, number]> = [['first', 0], ['middle', 1 + Math.floor(random() * (segment.length - 2))], ['last', segment.length - 1]]
    for (const [where, i] of positions) {
      const at = segment[i] ?? ''
      const edits: Array<[string, string]> = [
        ['substituted', segment.slice(0, i) + pick(B64URL, at) + segment.slice(i + 1)],
        ['replaced by a foreign character', segment.slice(0, i) + pick(FOREIGN, at) + segment.slice(i + 1)],
        ['deleted', segment.slice(0, i) + segment.slice(i + 1)],
        ['inserted', segment.slice(0, i) + pick(B64URL, '') + segment.slice(i)]
      ]
      for (const [edit, changed] of edits) {
        const copy = [...parts]
        copy[s] = changed
        out.push([`${segmentName}, ${where} character ${edit}`, copy.join('.')])
      }
    }
  }
  return out
}

function signatureByteMutations (token: string, random: () => number): Mutation[] {
  const [h, p, s] = token.split('.')
  const bytes = Buffer.from(s ?? '', 'base64url')
  const out: Mutation[] = []
  for (const [where, i] of [['first', 0], ['middle', Math.floor(bytes.length / 2)], ['last', bytes.length - 1]] as const) {
    const flipped = Buffer.from(bytes)
    flipped[i] = (flipped[i] ?? 0) ^ (1 << Math.floor(random() * 8))
    out.push([`signature, a bit of its ${where} byte flipped`, `${h ?? ''}.${p ?? ''}.${flipped.toString('base64url')}`])
  }
  // The same bytes spelled otherwise: padding; whitespace, which atob skips.
  const padded = bytes.toString('base64').replace(/\+/g, '-').replace(/\//g, '_')
  out.push(['signature, padded', `${h ?? ''}.${p ?? ''}.${padded === bytes.toString('base64url') ? `${padded}==` : padded}`])
  out.push(['signature, with a space inside', `${h ?? ''}.${p ?? ''}.${(s ?? '').slice(0, 4)} ${(s ?? '').slice(4)}`])
  out.push(['signature, one byte short', `${h ?? ''}.${p ?? ''}.${bytes.subarray(0, bytes.length - 1).toString('base64url')}`])
  out.push(['signature, one byte more', `${h ?? ''}.${p ?? ''}.${Buffer.concat([bytes, Buffer.from([0])]).toString('base64url')}`])
  return out
}

t.test('scopegate and jose accept and refuse the same tokens, for every algorithm a config may pin', async (t) => {
  const random = generator(SEED)
  t.ok(JWS_ALGORITHMS.length >= 11, 'every pinnable algorithm is covered')
  for (const alg of JWS_ALGORITHMS) {
    const { privateKey, publicKey } = keyPair(alg)
    const stranger = keyPair(alg).privateKey
    const payload = { iss: 'https://idp.test', sub: 'alice', aud: 'https://api.test', scope: 'read:todos', exp: 2_000_000_000 }
    let agreed = 0
    let respelled = 0
    for (let round = 0; round < ROUNDS; round++) {
      const valid = await sign(alg, privateKey, { ...payload, jti: `${alg}-${round}` })
      const [h, p, s] = valid.split('.')
      const other = await sign(alg, privateKey, { ...payload, sub: 'mallory' })
      const sibling = SIBLING[alg]
      const structural: Mutation[] = [
        ['valid', valid],
        ['signed by another key', await sign(alg, stranger, payload)],
        ['another token\'s signature', `${h ?? ''}.${p ?? ''}.${other.split('.')[2] ?? ''}`],
        ['another token\'s payload', `${h ?? ''}.${other.split('.')[1] ?? ''}.${s ?? ''}`],
        ['header and payload swapped', `${p ?? ''}.${h ?? ''}.${s ?? ''}`],
        ['empty signature', `${h ?? ''}.${p ?? ''}.`],
        ['two segments', `${h ?? ''}.${p ?? ''}`],
        ['four segments', `${valid}.${s ?? ''}`],
        ['header alg none, same signature', `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: 'k1' })).toString('base64url')}.${p ?? ''}.${s ?? ''}`],
        ['header alg HS256, same signature', `${Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' })).toString('base64url')}.${p ?? ''}.${s ?? ''}`],
        ['header with a changed kid, same signature', `${Buffer.from(JSON.stringify({ alg, typ: 'at+jwt', kid: 'k2' })).toString('base64url')}.${p ?? ''}.${s ?? ''}`]
      ]
      if (sibling !== undefined) structural.push([`validly signed as ${sibling} by the same key`, await sign(sibling, privateKey, payload)])
      const cases = [...structural, ...characterMutations(valid, random), ...signatureByteMutations(valid, random)]
      for (const [name, token] of cases) {
        const ours = scopegateAccepts(token, alg, publicKey)
        const theirs = await joseAccepts(token, alg, publicKey)
        if (name === 'valid' && !(ours && theirs)) t.fail(`${alg} round ${round}: the valid token is refused (scopegate ${String(ours)}, jose ${String(theirs)})`)
        if (ours === theirs) {
          agreed++
          continue
        }
        const [th, tp, ts] = token.split('.')
        const isRespelling = !ours && theirs && th === h && tp === p && ts !== undefined && ts !== s && sameBytes(ts, s ?? '')
        if (isRespelling) {
          respelled++
          let refusal: unknown
          try { parseJwt(token) } catch (err) { refusal = err }
          t.match(refusal, { reason: 'token_malformed', detail: 'signature is not canonical base64url' }, `${alg} ${name}: refused as non-canonical`)
        } else {
          t.fail(`${alg} round ${round}, ${name}: scopegate ${ours ? 'accepts' : 'refuses'}, jose ${theirs ? 'accepts' : 'refuses'}`)
        }
      }
    }
    t.ok(agreed > 0, `${alg}: ${agreed} agreements, ${respelled} respelled signatures refused by scopegate only`)
  }
})
