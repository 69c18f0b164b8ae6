/**
 * The `probe` command's flags. Its exit codes are its own (0 protected, 1 not protected, 2 usage or
 * unreachable), so a deploy pipeline or a Kubernetes Job can tell "the API is open" from "the probe could
 * not run"; a bad flag is therefore 2 here, not the other commands' 64.
 */
import { parseArgs } from 'node:util'
import { parseDuration } from '../shared/duration.js'
import { runProbe } from './run-probe.js'
import { PROBE_EXIT } from './verdict.js'

const USAGE = 'usage: scopegate probe URL [--host NAME] [--issuer ISS] [--audience AUD] [--timeout 5s]'

function usage (message: string): number {
  process.stderr.write(`${message}\n${USAGE}\n`)
  return PROBE_EXIT.unreachable
}

/** Parses `args`, runs the probe, and resolves to its exit code. */
export async function probeCommand (args: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        host: { type: 'string' }, issuer: { type: 'string' }, audience: { type: 'string' }, timeout: { type: 'string', default: '5s' }
      }
    })
  } catch (err) {
    return usage((err as Error).message)
  }
  const { values, positionals } = parsed
  if (positionals.length !== 1) return usage('probe needs exactly one URL')
  let url: URL
  try {
    url = new URL(positionals[0] as string)
  } catch {
    return usage('the URL is not a valid absolute URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return usage('the URL must be http or https')
  if (url.username !== '' || url.password !== '') return usage('the URL must not carry credentials')
  // A host name with an optional port, nothing a header could be split or smuggled with.
  if (values.host !== undefined && !/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(values.host)) return usage('--host must be a host name, optionally with :port')
  let timeoutMs: number
  try {
    timeoutMs = parseDuration(values.timeout)
  } catch (err) {
    return usage(`--timeout ${(err as Error).message}`)
  }
  if (timeoutMs <= 0) return usage('--timeout must be more than 0')
  return runProbe({ url, host: values.host, issuer: values.issuer, audience: values.audience, timeoutMs }, (line) => process.stdout.write(`${line}\n`))
}
