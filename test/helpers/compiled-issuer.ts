/**
 * A compiled issuer for unit tests of the key layer, built directly (no config load): what a test varies
 * (issuer, where its keys are, algorithms, JWKS options) is given, the rest is the plain default a
 * config without those keys compiles to (audience `https://api.test`, 30 s clock tolerance, no typ,
 * DPoP or certificate binding required, the standard claim names).
 */
import type { CompiledIssuer } from '../../src/config/types.js'

/** The fields a key-layer test chooses. */
export type IssuerFields = Pick<CompiledIssuer, 'issuer' | 'keys' | 'algorithms' | 'jwks'>

/** Issuer `idp` with `fields` and the defaults above. */
export function compiledIssuer (fields: IssuerFields): CompiledIssuer {
  return {
    id: 'idp',
    ...fields,
    audiences: new Set(['https://api.test']),
    clockToleranceSec: 30,
    requireTyp: false,
    requireDpop: false,
    requireCertificateBinding: false,
    claims: { scope: [['scope']], roles: ['roles'], clientId: [['client_id']], subject: ['sub'] }
  }
}
