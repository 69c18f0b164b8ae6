/**
 * Durations as the config writes them (`250ms`, `1.5s`, `30s`, `10m`, `24h`, `1d`). One unit per value,
 * no exponents, no negatives: the forms an operator reads at a glance. The same grammar is the JSON
 * Schema's `pattern` (see `config/schema.ts`), so a value that validates always parses.
 */

/** Regex source of a duration, anchored, for the config's JSON Schema. */
export const DURATION_PATTERN = '^(?:[0-9]+(?:\\.[0-9]+)?|\\.[0-9]+)(?:ms|s|m|h|d)$'

export const DURATION_MESSAGE = 'must be a duration such as 30s, 10m or 250ms'

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000
}

const DURATION = /^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)(ms|s|m|h|d)$/

/**
 * Parses a duration into milliseconds (possibly fractional: `1.5ms` is 1.5).
 * @throws Error `must be a duration such as 30s, 10m or 250ms` for anything else.
 */
export function parseDuration (text: string): number {
  const match = typeof text === 'string' ? DURATION.exec(text) : null
  const unit = match === null ? undefined : UNIT_MS[match[2] as string]
  if (match === null || unit === undefined) throw new Error(DURATION_MESSAGE)
  const ms = Number(match[1]) * unit
  if (!Number.isFinite(ms)) throw new Error(DURATION_MESSAGE)
  return ms
}
