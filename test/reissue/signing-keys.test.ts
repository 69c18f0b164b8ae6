/**
 * Loading the keys scopegate signs re-issued tokens with: JWK and PEM files, kid from the JWK or its
 * RFC 7638 thumbprint, public-only publication, and every way a key file can be unfit, reported with its
 * config path.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import t, { type Test } from 'tap'
import { calculateJwkThumbprint, compactVerify, createLocalJWKSet, CompactSign, exportJWK, type JWK } from 'jose'
import { ConfigError } from '../../src/config/problems.js'
import type { RawReissue } from '../../src/config/types.js'
import { generateSigningKeys, keyBaseDir, loadSigningKeys, parseKeyFile, type SigningKeySet } from '../../src/reissue/signing-keys.js'

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

const ec = (): { privateKey: KeyObject, publicKey: KeyObject } => generateKeyPairSync('ec', { namedCurve: 'P-256' })
const rsa = (bits = 2048): { privateKey: KeyObject, publicKey: KeyObject } => generateKeyPairSync('rsa', { modulusLength: bits })
const ed = (): { privateKey: KeyObject, publicKey: KeyObject } => generateKeyPairSync('ed25519')

const jwkText = (key: KeyObject, extra: Record<string, unknown> = {}): string => JSON.stringify({ ...key.export({ format: 'jwk' }), ...extra })
const pkcs8 = (key: KeyObject): string => key.export({ format: 'pem', type: 'pkcs8' }) as string

/** Loads keys from in-memory "files" (name -> text). */
function load (files: Record<string, string>, reissue: Partial<RawReissue> = {}): Promise<SigningKeySet | null> {
  const config: RawReissue = { issuer: 'https://scopegate.test', ttl: '60s', algorithm: 'ES256', keys: Object.keys(files).map((file) => ({ file })), ...reissue }
  return loadSigningKeys(config, {
    baseDir: '/keys',
    source: 'test.yaml',
    readFile: async (path) => {
      const name = path.replace(/^\/keys\//, '')
      const text = files[name]
      if (text === undefined) throw Object.assign(new Error('no such file'), { code: 'ENOENT' })
      return text
    }
  })
}

async function problemsOf (promise: Promise<unknown>): Promise<string[]> {
  try {
    await promise
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`)
    throw err
  }
  throw new Error('expected a ConfigError')
}

/** Signs with the set's signer and verifies with its published keys only. */
async function signsAndVerifies (t: Test, set: SigningKeySet): Promise<void> {
  const jws = await new CompactSign(new TextEncoder().encode('hello'))
    .setProtectedHeader({ alg: set.signer.alg, kid: set.signer.kid })
    .sign(set.signer.privateKey)
  const { payload } = await compactVerify(jws, createLocalJWKSet({ keys: set.published as JWK[] }))
  t.equal(new TextDecoder().decode(payload), 'hello', 'a signature by the signer verifies against the published keys')
}

t.test('a private EC JWK with a kid signs under that kid and is published without private members', async (t) => {
  const { privateKey } = ec()
  const set = await load({ 'current.jwk.json': jwkText(privateKey, { kid: 'k-2025' }) })
  t.ok(set)
  if (set === null) return
  t.equal(set.signer.kid, 'k-2025')
  t.equal(set.signer.alg, 'ES256')
  t.equal(set.generated, false)
  t.equal(set.published.length, 1)
  const [published] = set.published
  t.match(published, { kty: 'EC', crv: 'P-256', kid: 'k-2025', alg: 'ES256', use: 'sig' })
  for (const member of PRIVATE_MEMBERS) t.notOk(member in (published ?? {}), `no ${member}`)
  t.equal(set.signer.privateKey.extractable, false, 'the signing key cannot be exported again')
  await signsAndVerifies(t, set)
})

t.test('a PEM key has its RFC 7638 thumbprint as kid', async (t) => {
  const { privateKey, publicKey } = ec()
  const set = await load({ 'current.pem': pkcs8(privateKey) })
  const expected = await calculateJwkThumbprint(await exportJWK(publicKey), 'sha256')
  t.equal(set?.signer.kid, expected)
  t.equal(set?.published[0]?.kid, expected)
})

t.test('a JWK without kid gets the same thumbprint as the same key in PEM', async (t) => {
  const { privateKey } = ec()
  const fromJwk = await load({ 'a.json': jwkText(privateKey) })
  const fromPem = await load({ 'a.pem': pkcs8(privateKey) })
  t.equal(fromJwk?.signer.kid, fromPem?.signer.kid)
})

t.test('SEC1 (EC PRIVATE KEY) and PKCS#1 (RSA PRIVATE KEY) PEM files are read', async (t) => {
  const sec1 = await load({ 'ec.pem': ec().privateKey.export({ format: 'pem', type: 'sec1' }) as string })
  t.equal(sec1?.signer.alg, 'ES256')
  const pkcs1 = await load({ 'rsa.pem': rsa().privateKey.export({ format: 'pem', type: 'pkcs1' }) as string }, { algorithm: 'RS256' })
  t.equal(pkcs1?.signer.alg, 'RS256')
  if (pkcs1 !== null) await signsAndVerifies(t, pkcs1)
})

for (const [alg, pair] of [['RS256', rsa], ['PS256', rsa], ['EdDSA', ed]] as const) {
  t.test(`a ${alg} key signs and publishes only public members`, async (t) => {
    const { privateKey } = pair()
    const set = await load({ 'k.json': jwkText(privateKey) }, { algorithm: alg })
    t.ok(set)
    if (set === null) return
    t.equal(set.published[0]?.alg, alg)
    for (const member of PRIVATE_MEMBERS) t.notOk(member in (set.published[0] ?? {}), `no ${member}`)
    await signsAndVerifies(t, set)
  })
}

t.test('several keys: the first signs, all are published in order; the others may be public only', async (t) => {
  const current = ec()
  const previous = ec()
  const older = ec()
  const set = await load({
    'current.json': jwkText(current.privateKey, { kid: 'current' }),
    'previous.pem': pkcs8(previous.privateKey),
    'older.pub.pem': older.publicKey.export({ format: 'pem', type: 'spki' }) as string
  })
  t.equal(set?.signer.kid, 'current')
  t.equal(set?.published.length, 3)
  t.equal(set?.published[0]?.kid, 'current')
  t.equal(set?.published[1]?.kid, await calculateJwkThumbprint(await exportJWK(previous.publicKey), 'sha256'))
  t.equal(set?.published[2]?.kid, await calculateJwkThumbprint(await exportJWK(older.publicKey), 'sha256'))
})

t.test('an old key of another algorithm is published under the alg its JWK declares', async (t) => {
  const set = await load({ 'new.json': jwkText(ec().privateKey), 'old.json': jwkText(rsa().publicKey, { alg: 'RS256', kid: 'old-rsa' }) })
  t.match(set?.published[1], { kty: 'RSA', kid: 'old-rsa', alg: 'RS256', use: 'sig' })
})

t.test('relative key paths are read from the config file\'s directory', async (t) => {
  t.equal(keyBaseDir('/etc/scopegate/scopegate.yaml'), '/etc/scopegate')
  t.equal(keyBaseDir('<inline>'), process.cwd())
})

t.test('no configured key: nothing is loaded (the caller generates one)', async (t) => {
  t.equal(await load({}), null)
})

const unfit: Array<[string, Record<string, string>, Partial<RawReissue>, RegExp[]]> = [
  ['a missing file', { }, { keys: [{ file: 'missing.json' }] }, [/^reissue\.keys\[0\]\.file: missing\.json: cannot be read \(ENOENT\)$/]],
  ['text that is no key', { 'k.txt': 'hello' }, {}, [/^reissue\.keys\[0\]\.file: k\.txt: is neither a JWK \(JSON\) nor a PEM key$/]],
  ['broken JSON', { 'k.json': '{"kty":' }, {}, [/is not valid JSON/]],
  ['a JWK set', { 'k.json': JSON.stringify({ keys: [] }) }, {}, [/is a JWK set; give one key per file/]],
  ['a symmetric key', { 'k.json': JSON.stringify({ kty: 'oct', k: 'c2VjcmV0' }) }, {}, [/is a symmetric key/]],
  ['a public key first', { 'k.pem': ec().publicKey.export({ format: 'pem', type: 'spki' }) as string }, {}, [/is the signing key \(the first\), so it must be a private key/]],
  ['an RSA key for ES256', { 'k.json': jwkText(rsa().privateKey) }, {}, [/cannot be used for ES256: ES256 needs an EC key on curve prime256v1/]],
  ['a P-384 key for ES256', { 'k.pem': pkcs8(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey) }, {}, [/ES256 needs an EC key on curve prime256v1/]],
  ['a short RSA key', { 'k.pem': pkcs8(rsa(1024).privateKey) }, { algorithm: 'RS256' }, [/RSA keys must be at least 2048 bits/]],
  ['a signing JWK whose alg differs', { 'k.json': jwkText(ec().privateKey, { alg: 'ES384' }) }, {}, [/its JWK says alg ES384, not reissue.algorithm ES256/]],
  ['a JWK for encryption', { 'k.json': jwkText(ec().privateKey, { use: 'enc' }) }, {}, [/has use "enc"/]],
  ['an encrypted PEM', { 'k.pem': ec().privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'x' }) as string }, {}, [/is an encrypted private key/]],
  ['two keys with one kid', { 'a.json': jwkText(ec().privateKey, { kid: 'same' }), 'b.json': jwkText(ec().publicKey, { kid: 'same' }) }, {},
    [/^reissue\.keys\[1\]\.file: b\.json: has kid "same", already used by reissue\.keys\[0\]$/]],
  ['several bad files, all reported', { 'a.txt': 'x', 'b.json': '{' }, {}, [/^reissue\.keys\[0\]\.file/, /^reissue\.keys\[1\]\.file/]]
]

for (const [name, files, reissue, expected] of unfit) {
  t.test(`refused: ${name}`, async (t) => {
    const problems = await problemsOf(load(files, reissue))
    t.equal(problems.length, expected.length, problems.join('\n'))
    expected.forEach((pattern, i) => t.match(problems[i], pattern))
  })
}

t.test('parseKeyFile never returns a private key for a public-only file', async (t) => {
  const parsed = parseKeyFile(jwkText(ec().publicKey))
  t.equal(parsed.privateKey, null)
  t.equal(parsed.publicKey.type, 'public')
})

for (const alg of ['ES256', 'EdDSA', 'RS256', 'PS256'] as const) {
  t.test(`a generated ${alg} key signs, and only its public half is published`, async (t) => {
    const set = await generateSigningKeys(alg)
    t.equal(set.generated, true)
    t.equal(set.signer.alg, alg)
    t.equal(set.published.length, 1)
    t.equal(set.published[0]?.kid, await calculateJwkThumbprint(set.published[0] as JWK, 'sha256'), 'kid is the thumbprint')
    for (const member of PRIVATE_MEMBERS) t.notOk(member in (set.published[0] ?? {}), `no ${member}`)
    t.equal(set.signer.privateKey.extractable, false)
    await signsAndVerifies(t, set)
  })
}
