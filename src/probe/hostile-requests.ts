/**
 * The hostile requests `scopegate probe` plays against a deployed API, to show that something in front
 * of it really decides (see docs/kubernetes.md, "Prove scopegate is in the path"). Each request is one a
 * protected API must refuse: no token, a token that no issuer signed, forged identity headers, and
 * paths that a prefix matcher and the app may read differently. Each carries the sentence that a 2xx
 * answer to it means.
 *
 * The forged tokens are built here, from a key generated for this run and thrown away: they can never
 * be valid anywhere, and no real credential is ever read or sent. Every request goes to the origin of
 * the URL the operator gave; the path tricks change only the path.
 */
import { randomUUID } from 'node:crypto'
import { SignJWT, UnsecuredJWT, generateKeyPair } from 'jose'

/** One request of the probe. */
export interface HostileRequest {
  /** A short stable name, printed first on the probe's line. */
  name: string
  /** The request target (path and query), sent byte for byte: never normalized on the way out. */
  target: string
  /** Headers besides Host. */
  headers: Record<string, string>
  /** What a 2xx answer to this request means. */
  ifAllowed: string
}

/** Claims that make the forged tokens look like the API's own, so that only the signature gives them away. */
export interface ForgedClaims {
  issuer?: string
  audience?: string
}

/** The identity headers scopegate sets for the app: a client's own copies must never reach it. */
const FORGED_IDENTITY: Record<string, string> = {
  'x-auth-subject': 'scopegate-probe',
  'x-auth-client-id': 'scopegate-probe',
  'x-auth-scopes': '*',
  'x-auth-roles': 'admin',
  'x-auth-issuer': 'https://scopegate-probe.invalid/',
  'x-auth-route': 'scopegate-probe'
}

/** Lifetime of the forged tokens, in seconds: long enough to be unexpired when they arrive. */
const FORGED_LIFETIME_S = 300

function forgedPayload (claims: ForgedClaims): Record<string, unknown> {
  return {
    iss: claims.issuer ?? 'https://scopegate-probe.invalid/',
    aud: claims.audience ?? 'https://scopegate-probe.invalid/',
    sub: 'scopegate-probe',
    scope: 'scopegate-probe',
    jti: randomUUID()
  }
}

/** `alg: none`: a token with no signature at all. */
function unsignedToken (claims: ForgedClaims): string {
  return new UnsecuredJWT(forgedPayload(claims)).setIssuedAt().setExpirationTime(`${FORGED_LIFETIME_S}s`).encode()
}

/** RS256 with a key made for this run and discarded: well formed, and signed by no issuer. */
async function wrongKeyToken (claims: ForgedClaims): Promise<string> {
  const { privateKey } = await generateKeyPair('RS256')
  return new SignJWT(forgedPayload(claims))
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: `scopegate-probe-${randomUUID()}` })
    .setIssuedAt()
    .setExpirationTime(`${FORGED_LIFETIME_S}s`)
    .sign(privateKey)
}

/** `/todos` → `/%74odos`: one letter percent-encoded, which a raw string comparison misses and the app decodes. */
function encodeFirstLetter (path: string): string | null {
  const at = path.search(/[A-Za-z]/)
  if (at < 0) return null
  return `${path.slice(0, at)}%${path.charCodeAt(at).toString(16).toUpperCase()}${path.slice(at + 1)}`
}

/**
 * The requests, in the order they are sent. `url` is the protected API route the operator named; its
 * path and query are reused by every request.
 */
export async function hostileRequests (url: URL, claims: ForgedClaims = {}): Promise<HostileRequest[]> {
  const path = url.pathname
  const target = `${path}${url.search}`
  const requests: HostileRequest[] = [
    { name: 'no-token', target, headers: {}, ifAllowed: 'answered without any token: nothing checks requests to this URL' },
    {
      name: 'alg-none',
      target,
      headers: { authorization: `Bearer ${unsignedToken(claims)}` },
      ifAllowed: 'accepted an unsigned token (alg none): signatures are not checked'
    },
    {
      name: 'wrong-key',
      target,
      headers: { authorization: `Bearer ${await wrongKeyToken(claims)}` },
      ifAllowed: 'accepted a token signed by an unknown key: signatures are not checked against the issuer\'s keys'
    },
    {
      name: 'forged-identity',
      target,
      headers: { ...FORGED_IDENTITY },
      ifAllowed: 'let a request with forged x-auth-* headers and no token through: the app may believe them'
    },
    {
      name: 'dot-segment',
      target: `/scopegate-probe/%2e%2e${path}${url.search}`,
      headers: {},
      ifAllowed: 'let /scopegate-probe/%2e%2e/… through: a path outside the protected prefix reaches the app'
    },
    {
      name: 'semicolon-dots',
      target: `/scopegate-probe/..;${path}${url.search}`,
      headers: {},
      ifAllowed: 'let /scopegate-probe/..;/… through: a path Tomcat and Spring resolve into the protected one'
    },
    {
      name: 'double-slash',
      target: `/${path}${url.search}`,
      headers: {},
      ifAllowed: 'let //… through: a path the matcher does not see as the protected one'
    }
  ]
  const encoded = encodeFirstLetter(path)
  if (encoded !== null) {
    requests.push({
      name: 'encoded-letter',
      target: `${encoded}${url.search}`,
      headers: {},
      ifAllowed: 'let a percent-encoded spelling of the path through: the matcher compares raw bytes'
    })
  }
  return requests
}
