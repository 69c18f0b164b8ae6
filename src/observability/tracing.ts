/**
 * OpenTelemetry tracing (docs/observability.md#tracing): the SDK's tracer provider with a batch span
 * processor and an OTLP/HTTP exporter, the sampler the settings name, and W3C trace-context propagation.
 *
 * This module is imported only when tracing is on (`startTracing`, by a dynamic import in `gateway.ts`), so
 * with tracing off the SDK is never loaded and the request path holds one null check per hook.
 *
 * Nothing is registered globally (no global tracer provider, propagator or context manager): each gateway
 * has its own provider, so two gateways in a process (tests, a reload of the process's own config) never
 * share or replace each other's, and no async hook is installed (an `AsyncLocalStorage` would turn on
 * promise hooks for the whole process on Node 20 and 22). Which span a key or introspection fetch is the
 * child of is known because the fetch starts in the same synchronous turn as the verification that needs
 * it (see `TraceKit.current`); a fetch started otherwise (start-up, a background refresh) is a root span.
 *
 * Whose `traceparent` is continued (`telemetry.propagation.trust`): `trusted` (the default) continues the
 * trace of a `server.trustProxy` peer only, `always` anyone's, `never` no one's. An untrusted client starts
 * a new trace: it can neither join its requests to someone else's trace nor force them to be sampled.
 */
import type { IncomingMessage } from 'node:http'
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapGetter, type Context, type Span } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider,
  type Sampler, type SpanExporter
} from '@opentelemetry/sdk-trace'
import type { CompiledIssuer, PropagationTrust } from '../config/types.js'
import type { FetchLike } from '../keys/fetch-json.js'
import { unmapIPv4, type IpMatcher } from '../net/ip-matcher.js'
import { RequestTrace, type TraceKit } from './request-trace.js'
import type { TracingSettings } from './tracing-settings.js'

function samplerOf (settings: TracingSettings): Sampler {
  const ratio = new TraceIdRatioBasedSampler(settings.ratio)
  switch (settings.sampler) {
    case 'always_on': return new AlwaysOnSampler()
    case 'always_off': return new AlwaysOffSampler()
    case 'traceidratio': return ratio
    case 'parentbased_always_on': return new ParentBasedSampler({ root: new AlwaysOnSampler() })
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() })
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: ratio })
  }
}

/** The exporter of the settings' protocol; the package of the other protocol is never loaded. */
async function exporterOf (settings: TracingSettings): Promise<SpanExporter> {
  if (settings.protocol === 'http/json') {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http')
    return new OTLPTraceExporter({ url: settings.url })
  }
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto')
  return new OTLPTraceExporter({ url: settings.url })
}

/** What a fetch made for an issuer is, told from its method and URL (the issuer's config names them all). */
function fetchPurpose (issuer: CompiledIssuer, url: string, method: string | undefined): 'jwks' | 'discovery' | 'introspection' {
  if (method === 'POST') return 'introspection'
  if (issuer.keys.kind === 'discovery' && url === issuer.keys.url) return 'discovery'
  if (issuer.introspection?.endpoint.kind === 'discovery' && url === issuer.introspection.endpoint.url) return 'discovery'
  return 'jwks'
}

/** A URL as `url.full` may show it: no user name, password or query (the specification asks credentials be left out). */
function safeUrl (url: string): { full: string, address: string, port: number } {
  const parsed = new URL(url)
  const port = parsed.port === '' ? (parsed.protocol === 'https:' ? 443 : 80) : Number(parsed.port)
  return { full: `${parsed.protocol}//${parsed.host}${parsed.pathname}`, address: parsed.hostname, port }
}

/** What every Check's server span says of the call itself (OpenTelemetry's RPC conventions); the answer is always OK. */
const CHECK_ATTRIBUTES = Object.freeze({ 'rpc.system': 'grpc', 'rpc.service': 'envoy.service.auth.v3.Authorization', 'rpc.method': 'Check', 'rpc.grpc.status_code': 0 })

export class Tracing {
  private readonly provider: TracerProvider
  private readonly kit: TraceKit
  private readonly trust: PropagationTrust

  constructor (settings: TracingSettings, exporter: SpanExporter, trust: PropagationTrust) {
    this.provider = new TracerProvider({
      sampler: samplerOf(settings),
      resource: resourceFromAttributes(settings.resource),
      spanProcessors: [new BatchSpanProcessor({ exporter })]
    })
    this.kit = {
      tracer: this.provider.getTracer('scopegate'),
      propagator: new W3CTraceContextPropagator(),
      current: { context: null }
    }
    this.trust = trust
  }

  /** The trace context a request continues: its `traceparent` when its sender is trusted and the value is valid. */
  private parentOf (raw: IncomingMessage, trustProxy: IpMatcher | null): Context {
    return this.parentFrom(raw.headers, trustProxy !== null && trustProxy.has(unmapIPv4(raw.socket.remoteAddress ?? '')))
  }

  /** The trace context in `carrier` (lower-case `traceparent`, `tracestate`), when its sender is believed. */
  private parentFrom (carrier: Readonly<Record<string, unknown>>, senderTrusted: boolean): Context {
    if (this.trust === 'never' || carrier.traceparent === undefined) return ROOT_CONTEXT
    if (this.trust === 'trusted' && !senderTrusted) return ROOT_CONTEXT
    // A malformed value is ignored by the propagator: the request then starts a new trace.
    return this.kit.propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter)
  }

  /** The spans of a request on the proxy listener. */
  proxyRequest (raw: IncomingMessage, trustProxy: IpMatcher | null): RequestTrace {
    const method = raw.method ?? 'GET'
    return new RequestTrace(this.kit, this.parentOf(raw, trustProxy), method, method)
  }

  /** The spans of a forward-auth call: continued from the ingress's `traceparent` when the ingress is trusted. */
  forwardAuthRequest (raw: IncomingMessage, trustProxy: IpMatcher | null): RequestTrace {
    return new RequestTrace(this.kit, this.parentOf(raw, trustProxy), 'forward-auth', raw.method ?? 'GET')
  }

  /**
   * The spans of an ext_authz Check (docs/istio.md#tracing), continued when the gRPC peer is believed: from
   * the call's own `traceparent` (Envoy's span of the ext_authz call, when Envoy traces), else from the one
   * in the original request's headers. `method`: the original request's, when it could be read.
   */
  checkRequest (callContext: Readonly<Record<string, unknown>>, requestContext: Readonly<Record<string, unknown>>, peerTrusted: boolean, method: string): RequestTrace {
    const parent = this.parentFrom(callContext.traceparent === undefined ? requestContext : callContext, peerTrusted)
    return new RequestTrace(this.kit, parent, 'ext_authz', method, CHECK_ATTRIBUTES)
  }

  /**
   * `fetch` for one issuer's key, discovery and introspection calls, each in a client span: the child of
   * the verification that caused it, or a trace of its own (start-up, a background refresh).
   */
  fetchFor (issuer: CompiledIssuer, fetch: FetchLike): FetchLike {
    const { tracer, current } = this.kit
    return async (url, init) => {
      const purpose = fetchPurpose(issuer, url, init.method)
      const { full, address, port } = safeUrl(url)
      const span: Span = tracer.startSpan(`scopegate.${purpose}`, {
        kind: SpanKind.CLIENT,
        attributes: {
          'http.request.method': init.method ?? 'GET',
          'url.full': full,
          'server.address': address,
          'server.port': port,
          'scopegate.issuer': issuer.id
        }
      }, current.context ?? ROOT_CONTEXT)
      try {
        const response = await fetch(url, init)
        span.setAttribute('http.response.status_code', response.status)
        if (response.status >= 400) span.setStatus({ code: SpanStatusCode.ERROR })
        return response
      } catch (err) {
        // The kind of failure only: a network error's message may quote the URL, never more.
        span.setAttribute('error.type', (err as { name?: string }).name === 'TimeoutError' ? 'timeout' : 'network')
        span.setStatus({ code: SpanStatusCode.ERROR })
        throw err
      } finally {
        span.end()
      }
    }
  }

  /** Exports every span ended so far; for tests and before a worker exits. */
  async flush (): Promise<void> {
    await this.provider.forceFlush()
  }

  /** Exports what is left and stops, within `timeoutMs` (the exporter's own timeout bounds each request). */
  async shutdown (timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<void>((resolve) => { timer = setTimeout(resolve, Math.max(0, timeoutMs)) })
    await Promise.race([this.provider.shutdown().catch(() => {}), deadline])
    clearTimeout(timer)
  }
}

/** Tracing with these settings, its exporter loaded (the only place the SDK is imported from). */
export async function startTracing (settings: TracingSettings, trust: PropagationTrust): Promise<Tracing> {
  return new Tracing(settings, await exporterOf(settings), trust)
}
