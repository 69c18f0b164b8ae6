import t from 'tap'
import { GatewayError } from '../../src/shared/errors.js'
import { authorizationValues, extractToken } from '../../src/request/extract-token.js'

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln'

/** The token, null (no bearer credentials), or the reason of the 400. */
function extracted (values: string[]): string | null | { status: number, code: string, reason: string } {
  try {
    return extractToken(values)
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err
    return { status: err.status, code: err.code, reason: err.reason }
  }
}

const malformed = { status: 400, code: 'invalid_request', reason: 'authorization_malformed' }
const duplicated = { status: 400, code: 'invalid_request', reason: 'authorization_duplicated' }

t.test('a Bearer header gives its token', async (t) => {
  const cases: Array<[name: string, value: string, token: string]> = [
    ['canonical', `Bearer ${JWT}`, JWT],
    ['the scheme is case-insensitive', `bearer ${JWT}`, JWT],
    ['upper-case scheme', `BEARER ${JWT}`, JWT],
    ['surrounding whitespace', `  Bearer ${JWT}  `, JWT],
    ['several spaces after the scheme', `Bearer    ${JWT}`, JWT],
    ['token68 characters and padding', 'Bearer abc-._~+/xyz==', 'abc-._~+/xyz==']
  ]
  for (const [name, value, token] of cases) t.equal(extracted([value]), token, name)
})

t.test('no Authorization header, or another scheme, is no bearer credentials (null)', async (t) => {
  const cases: Array<[name: string, values: string[]]> = [
    ['no header', []],
    ['Basic', ['Basic dXNlcjpwYXNz']],
    ['DPoP', [`DPoP ${JWT}`]],
    ['a scheme alone', ['Negotiate']],
    ['Bearer glued to the token is another scheme', [`Bearer${JWT}`]],
    ['a tab is not the separator', [`Bearer\t${JWT}`]]
  ]
  for (const [name, values] of cases) t.equal(extracted(values), null, name)
})

t.test('a malformed Bearer header, or an empty one, is a bad request', async (t) => {
  const cases: Array<[name: string, value: string]> = [
    ['empty', ''],
    ['only spaces', '   '],
    ['Bearer with no token', 'Bearer'],
    ['Bearer and spaces', 'Bearer    '],
    ['two tokens', `Bearer ${JWT} ${JWT}`],
    ['a comma-separated second credential', `Bearer ${JWT}, Basic abc`],
    ['quotes', `Bearer "${JWT}"`],
    ['padding in the middle', 'Bearer abc=def'],
    ['non-ASCII', 'Bearer tökén'],
    ['a control character', 'Bearer abc\u0000def']
  ]
  for (const [name, value] of cases) t.same(extracted([value]), malformed, name)
})

t.test('two Authorization headers are a bad request, whatever they hold', async (t) => {
  const cases: Array<[name: string, values: string[]]> = [
    ['two bearer tokens', [`Bearer ${JWT}`, 'Bearer other']],
    ['the same token twice', [`Bearer ${JWT}`, `Bearer ${JWT}`]],
    ['bearer and basic', ['Basic dXNlcjpwYXNz', `Bearer ${JWT}`]],
    ['one empty', [`Bearer ${JWT}`, '']]
  ]
  for (const [name, values] of cases) t.same(extracted(values), duplicated, name)
})

t.test('authorizationValues reads every Authorization header from the raw list, whatever its case', async (t) => {
  const raw = ['Host', 'api', 'authorization', 'Bearer a', 'X-Authorization', 'Bearer x', 'AUTHORIZATION', 'Bearer b', 'Accept', '*/*']
  t.same(authorizationValues(raw), ['Bearer a', 'Bearer b'])
  t.same(authorizationValues([]), [])
  t.same(authorizationValues(['Authorization']), [''], 'a name without value (never sent by Node) reads as empty')
  t.same(extracted(authorizationValues(raw)), duplicated, 'so a duplicate that Node would have folded is refused')
})

t.test('a bearer header beside an access_token query parameter is refused (RFC 6750 §2: one method)', async (t) => {
  const twice = { status: 400, code: 'invalid_request', reason: 'token_duplicated' }
  const refused = ['?access_token=x', '?a=1&access_token=x', '?access_token', '?access%5Ftoken=x', '?a=1&access_token=&b']
  for (const query of refused) t.same(extractedWith([`Bearer ${JWT}`], query), twice, query)
  const kept = ['', '?', '?a=1', '?token=x', '?access_tokens=1', '?a=access_token', '?a=%41']
  for (const query of kept) t.equal(extractedWith([`Bearer ${JWT}`], query), JWT, query || '(no query)')
  t.equal(extractedWith([], '?access_token=x'), null, 'without a header: no bearer credentials, the route decides (401 when required)')
  t.equal(extractedWith(['Basic dXNlcjpwYXNz'], '?access_token=x'), null, 'another scheme is not a bearer method')
})

function extractedWith (values: string[], query: string): string | null | { status: number, code: string, reason: string } {
  try {
    return extractToken(values, query)
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err
    return { status: err.status, code: err.code, reason: err.reason }
  }
}
