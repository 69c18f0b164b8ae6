/**
 * What the introspection tests share: an RFC 7662 endpoint on 127.0.0.1 port 0 whose answer each test
 * scripts per call (and can change between calls, to fail on demand), and the one-issuer gateway config
 * that points at it (docs/opaque-tokens.md).
 */
import http from 'node:http'
import type { Test } from 'tap'
import { closeServer, listenLocal, trackSockets } from '../helpers/echo-upstream.js'

/** One call the endpoint received: its Authorization header and its form. */
export interface ReceivedCall { authorization: string | undefined, form: URLSearchParams }

/** An answer: a status and body (JSON unless `type` says otherwise), or `hang` for no answer at all. */
export type ScriptedAnswer = { status: number, body: string, type?: string } | 'hang'

/** The endpoint's URL and every call it received, in order. */
export interface ScriptedEndpoint { url: string, received: ReceivedCall[] }

/** Starts the endpoint (closed at `t`'s teardown); `answer` is asked once per call, after it is recorded. */
export async function startScriptedEndpoint (t: Test, answer: (call: ReceivedCall) => ScriptedAnswer): Promise<ScriptedEndpoint> {
  const endpoint: ScriptedEndpoint = { url: '', received: [] }
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (chunk: Buffer) => { body += chunk.toString('utf8') })
    req.on('end', () => {
      const call = { authorization: req.headers.authorization, form: new URLSearchParams(body) }
      endpoint.received.push(call)
      const scripted = answer(call)
      if (scripted === 'hang') return
      res.writeHead(scripted.status, { 'content-type': scripted.type ?? 'application/json' }).end(scripted.body)
    })
  })
  const sockets = trackSockets(server)
  endpoint.url = `http://127.0.0.1:${await listenLocal(server)}/introspect`
  t.teardown(() => closeServer(server, sockets))
  return endpoint
}

/** A gateway config with one issuer (ES256 JWTs from `jwks`, audience `audience`) introspecting as `introspection` says, and `/api` routed to `upstream`. */
export function introspectionConfig (jwks: { issuer: string, url: string }, audience: string, upstream: string, introspection: Record<string, unknown>): Record<string, unknown> {
  return {
    issuers: [{
      id: 'idp',
      issuer: jwks.issuer,
      jwksUri: jwks.url,
      algorithms: ['ES256'],
      audiences: [audience],
      introspection
    }],
    upstreams: { api: { url: upstream } },
    routes: [{ id: 'api', match: { path: '/api', prefix: true }, upstream: 'api' }]
  }
}
