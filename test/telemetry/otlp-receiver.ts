/**
 * A real OTLP/HTTP trace receiver for tests: a node:http server on 127.0.0.1 port 0 that accepts what an
 * OpenTelemetry exporter POSTs to `/v1/traces`, decodes it with the OTLP protos vendored beside this file
 * (`otlp-proto/`, Apache-2.0, from open-telemetry/opentelemetry-proto) or as OTLP/JSON, and keeps every span
 * flattened: ids in hex, attributes as plain values, the resource's attributes with each span.
 */
import http from 'node:http'
import type { Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import protobuf from 'protobufjs'
import { closeServer, listenLocal } from '../helpers/echo-upstream.js'

const PROTO_DIR = fileURLToPath(new URL('./otlp-proto/', import.meta.url))

export type AttributeValue = string | number | boolean | null

export interface ReceivedSpan {
  traceId: string
  spanId: string
  /** '' for a root span. */
  parentSpanId: string
  name: string
  /** OTLP's SpanKind number: 1 internal, 2 server, 3 client. */
  kind: number
  attributes: Record<string, AttributeValue>
  /** Every event's name and attributes, to search for what must never be recorded. */
  events: Array<{ name: string, attributes: Record<string, AttributeValue> }>
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number
  resource: Record<string, AttributeValue>
}

export interface OtlpReceiver {
  /** http://127.0.0.1:PORT: the base an exporter's endpoint is set to. */
  url: string
  spans: ReceivedSpan[]
  /** POST requests received, whatever they held. */
  readonly requests: number
  /** Content types of the requests, in order. */
  contentTypes: string[]
  close: () => Promise<void>
}

export const SPAN_KIND = { internal: 1, server: 2, client: 3 } as const

let exportRequest: protobuf.Type | null = null

function requestType (): protobuf.Type {
  if (exportRequest === null) {
    const root = new protobuf.Root()
    root.resolvePath = (_origin, target) => path.join(PROTO_DIR, target)
    root.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto', { keepCase: false })
    exportRequest = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest')
  }
  return exportRequest
}

interface AnyValue { stringValue?: string, boolValue?: boolean, intValue?: string | number, doubleValue?: number }
interface KeyValue { key: string, value?: AnyValue }

function valueOf (value: AnyValue | undefined): AttributeValue {
  if (value === undefined) return null
  if (value.stringValue !== undefined) return value.stringValue
  if (value.boolValue !== undefined) return value.boolValue
  if (value.intValue !== undefined) return Number(value.intValue)
  if (value.doubleValue !== undefined) return value.doubleValue
  return JSON.stringify(value)
}

function attributesOf (list: KeyValue[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, valueOf(kv.value)]))
}

interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind?: number
  attributes?: KeyValue[]
  events?: Array<{ name: string, attributes?: KeyValue[] }>
  status?: { code?: number }
}
interface OtlpRequest { resourceSpans?: Array<{ resource?: { attributes?: KeyValue[] }, scopeSpans?: Array<{ spans?: OtlpSpan[] }> }> }

/** Protobuf bytes are read as base64 by `toObject` (and sent so in OTLP/JSON as hex): both become hex. */
function hexOf (id: string | undefined, json: boolean): string {
  if (id === undefined || id === '') return ''
  return json ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex')
}

function flatten (request: OtlpRequest, json: boolean): ReceivedSpan[] {
  const spans: ReceivedSpan[] = []
  for (const resourceSpans of request.resourceSpans ?? []) {
    const resource = attributesOf(resourceSpans.resource?.attributes)
    for (const scope of resourceSpans.scopeSpans ?? []) {
      for (const span of scope.spans ?? []) {
        spans.push({
          traceId: hexOf(span.traceId, json),
          spanId: hexOf(span.spanId, json),
          parentSpanId: hexOf(span.parentSpanId, json),
          name: span.name,
          kind: span.kind ?? 0,
          attributes: attributesOf(span.attributes),
          events: (span.events ?? []).map((e) => ({ name: e.name, attributes: attributesOf(e.attributes) })),
          statusCode: span.status?.code ?? 0,
          resource
        })
      }
    }
  }
  return spans
}

function decode (body: Buffer, contentType: string): ReceivedSpan[] {
  if (contentType.startsWith('application/json')) return flatten(JSON.parse(body.toString('utf8')) as OtlpRequest, true)
  const type = requestType()
  const message = type.decode(body)
  const object = type.toObject(message, { bytes: String, longs: String, enums: Number, defaults: false }) as OtlpRequest
  return flatten(object, false)
}

export async function startOtlpReceiver (): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = []
  const contentTypes: string[] = []
  let requests = 0
  const sockets = new Set<Socket>()
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      requests++
      const contentType = req.headers['content-type'] ?? ''
      contentTypes.push(contentType)
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end()
        return
      }
      spans.push(...decode(Buffer.concat(chunks), contentType))
      // An empty ExportTraceServiceResponse: zero bytes in protobuf, `{}` in JSON.
      const json = contentType.startsWith('application/json')
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' }).end(json ? '{}' : '')
    })
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  const port = await listenLocal(server)
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    contentTypes,
    get requests () { return requests },
    close: () => closeServer(server, sockets)
  }
}
