/**
 * The processes of the peer rows (peers.ts), started beside the baseline and scopegate's proxy mode, all
 * pinned to the proxy core: HAProxy (haproxy.ts), and nginx with a scopegate of its own answering its
 * `/decisions` (nginx-ingress.ts). A missing binary leaves its rows out, with a message.
 */
import { ingressBenchConfig } from './config.js'
import { findHaproxy, startHaproxy } from './haproxy.js'
import type { Target } from './measure.js'
import { findNginx, startNginxIngress } from './nginx-ingress.js'
import { BASELINE, HAPROXY, INGRESS, INGRESS_CACHED, PROXY_MODE, type PeerTargets } from './peers.js'
import { startGateway, type Child } from './processes.js'
import type { Issuer } from './tokens.js'

export interface PeerSetup {
  issuer: Issuer
  upstreamUrl: string
  /** The baseline's target, and scopegate's proxy mode with given headers. */
  base: Target
  gate: (headers: () => Record<string, string>) => Target
  core: number
}

/** The ingress scopegate's admin port (for counting nginx's connections) and metrics address. */
export interface IngressInfo { adminPort: number, metricsUrl: string }

/** Starts the peers (each pushed onto `children`, to be stopped by the caller) and returns the rows, in table order. */
export async function startPeers (children: Child[], setup: PeerSetup): Promise<{ peers: PeerTargets, ingress: IngressInfo | null }> {
  const { issuer, upstreamUrl, base, gate, core } = setup
  const peers: PeerTargets = [[BASELINE, () => base], [PROXY_MODE, (headers) => gate(headers)]]
  const haproxyBinary = findHaproxy()
  if (haproxyBinary === null) process.stdout.write('haproxy not found: its reference row is left out\n')
  else {
    const haproxy = await startHaproxy(haproxyBinary, upstreamUrl, issuer.url, issuer.publicKeyPem('RS256'), core)
    children.push(haproxy)
    peers.unshift([HAPROXY, (headers) => ({ url: `http://127.0.0.1:${haproxy.port}/api/todos`, headers, pid: haproxy.process.pid })])
  }
  const nginx = findNginx()
  if (nginx === null) {
    process.stdout.write('nginx not found: the ingress rows are left out\n')
    return { peers, ingress: null }
  }
  const forwardAuth = await startGateway('bench-ingress-config', (port, adminPort) => ingressBenchConfig(issuer.url, upstreamUrl, port, adminPort), core)
  children.push(forwardAuth)
  const ingress = await startNginxIngress(nginx, upstreamUrl, forwardAuth.url, core)
  children.push(ingress)
  // Both processes' CPU is charged to the ingress rows: on a shared host, two processes get more of the
  // core than one, so req/s favours these rows and CPU per request is the fair comparison.
  const pids = { pid: forwardAuth.process.pid, otherPids: ingress.process.pid === undefined ? [] : [ingress.process.pid] }
  peers.push([INGRESS, (headers) => ({ url: `http://127.0.0.1:${ingress.plain}/api/todos`, headers, ...pids })])
  peers.push([INGRESS_CACHED, (headers) => ({ url: `http://127.0.0.1:${ingress.cached}/api/todos`, headers, ...pids })])
  return { peers, ingress: { adminPort: Number(new URL(forwardAuth.url).port), metricsUrl: forwardAuth.url.replace(/\/readyz$/, '/metrics') } }
}
