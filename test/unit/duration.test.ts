import t from 'tap'
import { DURATION_PATTERN, parseDuration } from '../../src/shared/duration.js'

const MESSAGE = 'must be a duration such as 30s, 10m or 250ms'

t.test('parseDuration turns each unit into milliseconds', async (t) => {
  const cases: Array<[string, number]> = [
    ['0s', 0],
    ['250ms', 250],
    ['1.5s', 1500],
    ['.5s', 500],
    ['30s', 30_000],
    ['10m', 600_000],
    ['24h', 86_400_000],
    ['1d', 86_400_000],
    ['007s', 7000]
  ]
  for (const [text, ms] of cases) t.equal(parseDuration(text), ms, text)
})

t.test('parseDuration refuses anything but <number><unit>', async (t) => {
  const cases = ['', '30', 's', '-1s', '+1s', '1.s', '1e3s', '30 s', ' 30s', '30s ', '10M', '1w', '1h30m', '1.5.5s', 'Infinity s', '0x10s']
  for (const text of cases) t.throws(() => parseDuration(text), { message: MESSAGE }, JSON.stringify(text))
})

t.test('parseDuration refuses a value too large to be a number', async (t) => {
  t.throws(() => parseDuration(`${'9'.repeat(400)}d`), { message: MESSAGE })
})

t.test('DURATION_PATTERN accepts exactly what parseDuration parses', async (t) => {
  const pattern = new RegExp(DURATION_PATTERN)
  const samples = ['0s', '250ms', '1.5s', '.5s', '10m', '24h', '1d', '', '30', '-1s', '1.s', '1e3s', '30 s', '10M', '1w', '1h30m']
  for (const text of samples) {
    let parses = true
    try { parseDuration(text) } catch { parses = false }
    t.equal(pattern.test(text), parses, JSON.stringify(text))
  }
})
