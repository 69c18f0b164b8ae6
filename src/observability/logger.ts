/**
 * The process logger (pino, JSON lines). Redaction is a second line of defence: nothing on the request
 * path hands a token or an Authorization header to the logger in the first place.
 */
import { createRequire } from 'node:module'
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino'
import { LineBatch } from './line-batch.js'

export interface LoggerOptions {
  level: LevelWithSilent
  /** Human-readable output for the demo, when pino-pretty is installed. */
  pretty?: boolean
  /** Where lines go; stdout by default. Tests pass a stream that collects them. */
  destination?: DestinationStream
}

/** Whether pino-pretty can be loaded: it is a devDependency, so `npm ci --omit=dev` (the container) has none. */
export function prettyAvailable (): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty')
    return true
  } catch {
    return false
  }
}

export function createLogger (options: LoggerOptions): Logger {
  // Pretty output is asked for by the demo on a terminal; without pino-pretty it degrades to JSON lines.
  const pretty = options.pretty === true && options.destination === undefined && prettyAvailable()
  const settings = {
    level: options.level,
    base: { service: 'scopegate' },
    redact: {
      // Exact paths only: a wildcard path makes pino walk every logged object, about 5% of a request's CPU.
      paths: ['authorization', 'token', 'headers.authorization', 'req.headers.authorization', 'request.headers.authorization'],
      censor: '[redacted]'
    },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: process.stdout.isTTY === true, ignore: 'pid,hostname,service' } } } : {})
  }
  // Without a given destination: stdout, written asynchronously, so lines that pile up while a write is
  // under way go out in one write instead of one syscall per decision. pino flushes it on exit. (A
  // minimum batch size would save a little more, but would hold lifecycle lines back as well.) The lines
  // of one turn of the event loop are gathered into one write first (line-batch.ts).
  const destination = options.destination ?? (pretty ? undefined : new LineBatch(pino.destination({ dest: 1, sync: false })))
  const logger = destination === undefined ? pino(settings) : pino(settings, destination)
  if (options.pretty === true && !pretty && options.destination === undefined) logger.info('pino-pretty is not installed: logging JSON lines')
  return logger
}

/**
 * Puts a reloaded config's `server.logLevel` in force on `logger` at once, if the reload changed it. A
 * level set on the logger otherwise (a test's `silent`) is left alone while the config's stays the same.
 */
export function applyLogLevel (logger: Logger, before: LevelWithSilent, after: LevelWithSilent): void {
  if (after !== before) logger.level = after
}
