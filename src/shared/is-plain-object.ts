/**
 * Whether a value is a plain object, as JSON and YAML parsers build them (a mapping): not null, not a
 * list, and not an instance of any class (a Date, a Map), whose properties are not its content.
 */
export function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}
