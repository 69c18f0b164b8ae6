import t from 'tap'
import { GatewayError } from '../../src/shared/errors.js'
import { SUBPROTOCOL_TOKEN_PREFIX, subprotocolToken } from '../../src/request/subprotocol-token.js'

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl'
const entry = (token: string): string => SUBPROTOCOL_TOKEN_PREFIX + Buffer.from(token).toString('base64url')

t.test('the token entry is taken out; the other subprotocols keep their order', async (t) => {
  const cases: Array<[header: string | undefined, token: string | null, protocols: string[]]> = [
    [undefined, null, []],
    ['chat.v1', null, ['chat.v1']],
    ['chat.v1, chat.v2', null, ['chat.v1', 'chat.v2']],
    [`${entry(TOKEN)}, chat.v1`, TOKEN, ['chat.v1']],
    [`chat.v1,${entry(TOKEN)} ,chat.v2`, TOKEN, ['chat.v1', 'chat.v2']],
    [entry(TOKEN), TOKEN, []],
    ['chat.v1, , chat.v2', null, ['chat.v1', 'chat.v2']]
  ]
  for (const [header, token, protocols] of cases) {
    t.same(subprotocolToken(header), { token, protocols }, String(header))
  }
})

t.test('refused with 400 invalid_request: two tokens, or one that is not base64url of a bearer token', async (t) => {
  const cases: Array<[header: string, reason: string]> = [
    [`${entry(TOKEN)}, ${entry(TOKEN)}`, 'authorization_duplicated'],
    [`${SUBPROTOCOL_TOKEN_PREFIX}`, 'authorization_malformed'],
    [`${SUBPROTOCOL_TOKEN_PREFIX}a+b/c=`, 'authorization_malformed'],
    [entry('two words'), 'authorization_malformed'],
    [entry('tok\u00e9n'), 'authorization_malformed']
  ]
  for (const [header, reason] of cases) {
    const err = t.throws(() => subprotocolToken(header)) as unknown
    t.ok(err instanceof GatewayError && err.status === 400 && err.code === 'invalid_request' && err.reason === reason, reason)
    t.notOk(err instanceof GatewayError && err.description.includes(TOKEN), 'the description never echoes the token')
  }
})
