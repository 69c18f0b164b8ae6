/**
 * What every load benchmark starts from: this process (the loader) pinned to the load core, the bench
 * issuer, and the upstream on the load core, leaving the other core to the proxy under test. `children`
 * collects the processes the benchmark starts after them; `stop` ends them all by PID, the last started
 * first, and closes the issuer: call it in a `finally`.
 */
import { pinSelf, startUpstream, type Child } from './processes.js'
import { startIssuer, type Issuer } from './tokens.js'

export interface BenchBase {
  issuer: Issuer
  upstream: Child
  /** The upstream, then whatever the benchmark pushes: stopped in reverse order by `stop`. */
  children: Child[]
  stop: () => Promise<void>
}

/** `introspected`: the claims the issuer's introspection endpoint answers with (see startIssuer). */
export async function startIssuerAndUpstream (loadCore: number, introspected: Record<string, unknown> = {}): Promise<BenchBase> {
  pinSelf(loadCore)
  const children: Child[] = []
  const issuer = await startIssuer(introspected)
  const stop = async (): Promise<void> => {
    for (const child of children.reverse()) await child.stop()
    await issuer.close()
  }
  try {
    const upstream = await startUpstream(loadCore)
    children.push(upstream)
    return { issuer, upstream, children, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
