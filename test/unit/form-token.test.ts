import t from 'tap'
import { FormTokenScanner } from '../../src/request/form-token.js'

/** The scanner's verdict on a body cut into the given pieces. */
function scan (...pieces: string[]): boolean {
  const scanner = new FormTokenScanner()
  for (const piece of pieces) if (scanner.push(Buffer.from(piece, 'latin1'))) return true
  return scanner.end()
}

/** Every way to cut `body` in two. */
function everySplit (body: string): boolean[] {
  const verdicts: boolean[] = []
  for (let i = 0; i <= body.length; i++) verdicts.push(scan(body.slice(0, i), body.slice(i)))
  return verdicts
}

t.test('an access_token parameter is found wherever chunks are cut', async (t) => {
  const bodies = ['access_token=x', 'a=1&access_token=x', 'a=1&access_token', 'a=1&access_token=&b=2', 'a=1&access%5Ftoken=x',
    'a=1&%61ccess_token=x', 'a=%26&access_token=x', 'a==&access_token']
  for (const body of bodies) t.same(everySplit(body), Array(body.length + 1).fill(true), body)
})

t.test('other names, and the name as a value, are not a token', async (t) => {
  const bodies = ['', 'a=1', 'token=x', 'access_tokens=x', 'xaccess_token=x', 'a=access_token', 'a=1&b=access_token=x',
    'access+token=x', 'access_token_=1', 'a=' + 'x'.repeat(100), 'x'.repeat(100) + 'access_token=1']
  for (const body of bodies) t.same(everySplit(body), Array(body.length + 1).fill(false), body || '(empty)')
})

t.test('a long body is scanned in bounded memory: values skipped, long names dropped', async (t) => {
  const value = 'v'.repeat(1024 * 1024)
  t.equal(scan(`a=${value}`, `${value}&access_token=1`), true)
  t.equal(scan('n'.repeat(1024 * 1024), `=${value}`), false)
})
