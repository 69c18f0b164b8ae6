/**
 * One list of JWS algorithms (src/token/algorithms.ts) behind the config schema, the verifier, the
 * re-issue signer and the keys it may publish: these tests fail if any of them drifts from it.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { CompactSign } from 'jose'
import t from 'tap'
import { configSchema } from '../../src/config/schema.js'
import { importJwk } from '../../src/keys/import-jwk.js'
import { generateSigningKeys } from '../../src/reissue/signing-keys.js'
import {
  JWS_ALGORITHMS, MIN_RSA_BITS, PUBLISHABLE_ALGORITHMS, REFUSED_ALGORITHMS, REISSUE_ALGORITHMS, algorithmSpec, keyFitsAlgorithm
} from '../../src/token/algorithms.js'
import { verifySignature } from '../../src/token/verify-signature.js'

type Schema = Record<string, unknown>
const properties = (schema: unknown): Record<string, Schema> => (schema as { properties: Record<string, Schema> }).properties
const items = (schema: unknown): Schema => (schema as { items: Schema }).items

t.test('the schema pins the issuer and re-issue algorithms to the one list', async (t) => {
  const issuerAlgorithms = items(properties(items(properties(configSchema).issuers)).algorithms)
  t.strictSame(issuerAlgorithms.enum, JWS_ALGORITHMS)
  t.strictSame((issuerAlgorithms.not as Schema).enum, REFUSED_ALGORITHMS)
  t.strictSame(properties(properties(configSchema).reissue).algorithm?.enum, REISSUE_ALGORITHMS)
})

t.test('the verifier knows every algorithm an issuer may pin, and none that is refused', async (t) => {
  for (const alg of JWS_ALGORITHMS) t.ok(algorithmSpec(alg), alg)
  for (const alg of [...REFUSED_ALGORITHMS, 'toString', 'constructor', 'rs256', '']) t.equal(algorithmSpec(alg), undefined, alg)
  for (const alg of PUBLISHABLE_ALGORITHMS) t.ok(JWS_ALGORITHMS.includes(alg as never), `${alg} is publishable and verifiable`)
  for (const alg of REISSUE_ALGORITHMS) t.ok(PUBLISHABLE_ALGORITHMS.has(alg), `${alg} signs and is publishable`)
})

t.test('a token the re-issuer signs with each of its algorithms is one the verifier accepts', async (t) => {
  for (const alg of REISSUE_ALGORITHMS) {
    const keys = await generateSigningKeys(alg)
    const imported = importJwk(keys.published[0])
    if (!imported.ok) throw new Error(`${alg}: ${imported.reason}`)
    t.ok(imported.entry.algorithms.has(alg), `${alg}: the published key verifies ${alg}`)
    const jws = await new CompactSign(Buffer.from('{"sub":"a"}')).setProtectedHeader({ alg }).sign(keys.signer.privateKey)
    const [header, payload, signature] = jws.split('.')
    t.ok(verifySignature(alg, imported.entry.key, `${header}.${payload}`, Buffer.from(signature ?? '', 'base64url')), `${alg}: verified`)
  }
})

t.test('keyFitsAlgorithm pins key type, curve and RSA size to the algorithm', async (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: MIN_RSA_BITS }).publicKey
  const rsaShort = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey
  const rsaPss = generateKeyPairSync('rsa-pss', { modulusLength: MIN_RSA_BITS }).publicKey
  const ec = (namedCurve: string): KeyObject => generateKeyPairSync('ec', { namedCurve }).publicKey
  const ed25519 = generateKeyPairSync('ed25519').publicKey
  const x25519 = generateKeyPairSync('x25519').publicKey
  const cases: Array<[alg: string, key: KeyObject, fits: boolean]> = [
    ['RS256', rsa, true],
    ['PS512', rsa, true],
    ['RS256', rsaShort, false],
    ['PS256', rsaPss, false],
    ['RS256', ec('P-256'), false],
    ['ES256', ec('P-256'), true],
    ['ES256', ec('P-384'), false],
    ['ES384', ec('P-384'), true],
    ['ES512', ec('P-521'), true],
    ['EdDSA', ed25519, true],
    ['Ed25519', ed25519, true],
    ['EdDSA', x25519, false],
    ['HS256', rsa, false],
    ['none', rsa, false]
  ]
  for (const [alg, key, fits] of cases) {
    t.equal(keyFitsAlgorithm(alg, key) === null, fits, `${alg} ${key.asymmetricKeyType ?? ''} ${key.asymmetricKeyDetails?.namedCurve ?? ''}`)
  }
  t.equal(keyFitsAlgorithm('RS256', rsaShort), `RSA keys must be at least ${MIN_RSA_BITS} bits`)
})
