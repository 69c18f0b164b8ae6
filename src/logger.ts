/**
 * The process logger (pino, JSON lines). Redaction is a second line of defence: nothing on the request
 * path hands a token or an Authorization header to the logger in the first place.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino'

export interface LoggerOptions {
  level: LevelWithSilent
  /** Human-readable output for the demo, when pino-pretty is installed. */
  pretty?: boolean
  /** Where lines go; stdout by default. Tests pass a stream that collects them. */
  destination?: DestinationStream
}

export function createLogger (options: LoggerOptions): Logger {
  const settings = {
    level: options.level,
    base: { service: 'scopegate' },
    redact: {
      paths: ['authorization', 'token', '*.authorization', '*.token', 'headers.authorization', 'req.headers.authorization'],
      censor: '[redacted]'
    },
    ...(options.pretty === true ? { transport: { target: 'pino-pretty', options: { colorize: true, ignore: 'pid,hostname,service' } } } : {})
  }
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination)
}
