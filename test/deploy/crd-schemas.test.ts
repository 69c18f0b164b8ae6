/**
 * The ingress manifests under deploy/kubernetes against the CRD schemas of the minimum versions
 * docs/kubernetes.md states (vendored in test/deploy/schemas, see its README): every Gateway API,
 * Envoy Gateway, Traefik and F5 NGINX Ingress object must validate, and deliberately broken copies (an unknown field, a
 * wrong type, a missing required field, a value outside an enum) must not, so the check is known
 * to bite. Rules a CRD states as CEL (x-kubernetes-validations) are the API server's to check, not this test's.
 */
import { readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv, type ValidateFunction } from 'ajv'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { yamlFiles } from './yaml-files.js'

type Obj = Record<string, any>

const HERE = dirname(fileURLToPath(import.meta.url))
const DEPLOY = join(HERE, '..', '..', 'deploy', 'kubernetes')
const SCHEMAS = join(HERE, 'schemas')

/** apiVersion + kind → the vendored schema file. */
const SCHEMA_FILES: Record<string, string> = {
  'gateway.networking.k8s.io/v1 GatewayClass': 'gateway-api-v1.1.0/gatewayclass_v1.json',
  'gateway.networking.k8s.io/v1 Gateway': 'gateway-api-v1.1.0/gateway_v1.json',
  'gateway.networking.k8s.io/v1 HTTPRoute': 'gateway-api-v1.1.0/httproute_v1.json',
  'gateway.networking.k8s.io/v1beta1 ReferenceGrant': 'gateway-api-v1.1.0/referencegrant_v1beta1.json',
  'gateway.envoyproxy.io/v1alpha1 SecurityPolicy': 'envoy-gateway-v1.1.0/gateway.envoyproxy.io_securitypolicies.yaml',
  'traefik.io/v1alpha1 IngressRoute': 'traefik-v3.0.0/traefik.io_ingressroutes.yaml',
  'traefik.io/v1alpha1 Middleware': 'traefik-v3.0.0/traefik.io_middlewares.yaml',
  'k8s.nginx.org/v1 Policy': 'f5-nginx-ingress-v5.5.0/k8s.nginx.org_policies.yaml',
  'security.istio.io/v1 AuthorizationPolicy': 'istio/authorizationpolicy_v1.json'
}

// The schemas carry Kubernetes' own keywords (x-kubernetes-*) and formats (int32, int64…) that a JSON
// Schema validator does not know: accept the keywords, and do not check formats (the API server does).
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false })
const validators = new Map<string, ValidateFunction>()
const compileFile = (file: string, version: string): ValidateFunction => {
  const text = readFileSync(join(SCHEMAS, file), 'utf8')
  return ajv.compile(draft7(file.endsWith('.yaml') ? fromCrd(text, version) : JSON.parse(text)) as Obj)
}

/**
 * OpenAPI v3 (like JSON Schema draft 4) writes an exclusive bound as `maximum: 599, exclusiveMaximum:
 * true`; ajv speaks draft 7, where the bound itself is `exclusiveMaximum: 599`. Rewritten in place.
 */
function draft7 (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(draft7)
  if (node === null || typeof node !== 'object') return node
  const out: Obj = {}
  for (const [key, value] of Object.entries(node)) out[key] = draft7(value)
  for (const [flag, bound] of [['exclusiveMaximum', 'maximum'], ['exclusiveMinimum', 'minimum']] as const) {
    if (typeof out[flag] !== 'boolean') continue
    if (out[flag] === true) out[flag] = out[bound]
    else delete out[flag]
    if (out[flag] !== undefined) delete out[bound]
  }
  return out
}
/**
 * A CRD as its project ships it (YAML), turned into the JSON Schema of one version: its
 * openAPIV3Schema, with `additionalProperties: false` on every object that lists its properties and
 * does not keep unknown fields, as the API server's pruning would drop them silently (the catalog's
 * JSON files are converted the same way).
 */
function fromCrd (text: string, version: string): unknown {
  const crd = parseAllDocuments(text).map((d) => d.toJS() as Obj).find((d) => d?.kind === 'CustomResourceDefinition')
  const schema = (crd?.spec.versions as Obj[] | undefined)?.find((v) => v.name === version)?.schema?.openAPIV3Schema
  if (schema === undefined) throw new Error(`no openAPIV3Schema for version ${version}`)
  const closed = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(closed)
    if (node === null || typeof node !== 'object') return node
    const out: Obj = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, k === 'properties' ? Object.fromEntries(Object.entries(v as Obj).map(([p, s]) => [p, closed(s)])) : closed(v)]))
    if (out.properties !== undefined && out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) out.additionalProperties = false
    return out
  }
  return closed(schema)
}

function validatorFor (key: string): ValidateFunction | undefined {
  const file = SCHEMA_FILES[key]
  if (file === undefined) return undefined
  let validate = validators.get(key)
  if (validate === undefined) {
    validate = compileFile(file, key.split(' ')[0]?.split('/')[1] as string)
    validators.set(key, validate)
  }
  return validate
}

const objects: Array<{ file: string, obj: Obj }> = yamlFiles(DEPLOY).flatMap((file) =>
  parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => ({ file: relative(DEPLOY, file), obj: doc.toJS() as Obj })))
const keyOf = (obj: Obj): string => `${String(obj.apiVersion)} ${String(obj.kind)}`
const errorsOf = (obj: Obj): string[] => {
  const validate = validatorFor(keyOf(obj)) as ValidateFunction
  return validate(obj) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`)
}

t.test('every Gateway API, Envoy Gateway, Traefik and F5 NGINX object validates against its vendored schema', async (t) => {
  const covered = objects.filter(({ obj }) => validatorFor(keyOf(obj)) !== undefined)
  t.same([...new Set(covered.map(({ obj }) => keyOf(obj)))].sort(), Object.keys(SCHEMA_FILES).sort(), 'each vendored schema is used by a manifest')
  for (const { file, obj } of covered) t.same(errorsOf(obj), [], `${file}: ${keyOf(obj)} ${String(obj.metadata?.name)}`)
  const crdGroups = /(gateway\.networking\.k8s\.io|gateway\.envoyproxy\.io|traefik\.io|k8s\.nginx\.org|security\.istio\.io)\//
  const unchecked = objects.filter(({ obj }) => crdGroups.test(obj.apiVersion) && validatorFor(keyOf(obj)) === undefined)
  t.same(unchecked.map(({ file }) => file), [], 'no CRD object goes unchecked')
})

/** A deep copy of the first manifest of `kind`, changed by `edit`. */
function broken (kind: string, edit: (obj: Obj) => void): Obj {
  const found = objects.find(({ obj }) => obj.kind === kind)
  if (found === undefined) throw new Error(`no ${kind} in deploy/kubernetes`)
  const copy = structuredClone(found.obj)
  edit(copy)
  return copy
}

t.test('broken copies fail: the check bites', async (t) => {
  const cases: Array<[string, Obj]> = [
    ['SecurityPolicy: a misspelt field (failopen)', broken('SecurityPolicy', (o) => { o.spec.extAuth.failopen = o.spec.extAuth.failOpen; delete o.spec.extAuth.failOpen })],
    ['SecurityPolicy: a backendRef port by name (it must be a number)', broken('SecurityPolicy', (o) => { o.spec.extAuth.http.backendRefs[0].port = 'admin' })],
    ['SecurityPolicy: failOpen as a string', broken('SecurityPolicy', (o) => { o.spec.extAuth.failOpen = 'false' })],
    ['HTTPRoute: a path match type that does not exist', broken('HTTPRoute', (o) => { o.spec.rules[0].matches[0].path.type = 'Prefix' })],
    ['HTTPRoute: an unknown field in a rule', broken('HTTPRoute', (o) => { o.spec.rules[0].middlewares = ['scopegate'] })],
    ['Gateway: a listener without a protocol', broken('Gateway', (o) => { delete o.spec.listeners[0].protocol })],
    ['Gateway: allowedRoutes from a value that does not exist', broken('Gateway', (o) => { o.spec.listeners[0].allowedRoutes.namespaces.from = 'Any' })],
    ['GatewayClass: no controllerName', broken('GatewayClass', (o) => { delete o.spec.controllerName })],
    ['ReferenceGrant: to without a kind', broken('ReferenceGrant', (o) => { delete o.spec.to[0].kind })],
    ['Middleware: trustForwardHeader as a string', broken('Middleware', (o) => { o.spec.forwardAuth.trustForwardHeader = 'false' })],
    ['Middleware: ingress-nginx\'s annotation name as a field', broken('Middleware', (o) => { o.spec.forwardAuth.authUrl = o.spec.forwardAuth.address })],
    ['IngressRoute: a route without match', broken('IngressRoute', (o) => { delete o.spec.routes[0].match })],
    ['Policy: externalAuth without authServiceName', broken('Policy', (o) => { delete o.spec.externalAuth.authServiceName })],
    ['Policy: ingress-nginx\'s auth-url as a field', broken('Policy', (o) => { o.spec.externalAuth.authUrl = 'http://scopegate.scopegate.svc:9090/decisions' })],
    ['Policy: an authURI that is not a path', broken('Policy', (o) => { o.spec.externalAuth.authURI = 'decisions' })],
    ['AuthorizationPolicy: an action that does not exist', broken('AuthorizationPolicy', (o) => { o.spec.action = 'EXTERNAL' })],
    ['AuthorizationPolicy: the provider as a string', broken('AuthorizationPolicy', (o) => { o.spec.provider = 'scopegate' })],
    ['AuthorizationPolicy: a misspelt provider field', broken('AuthorizationPolicy', (o) => { o.spec.provider = { providerName: 'scopegate' } })]
  ]
  for (const [name, obj] of cases) t.not(errorsOf(obj).length, 0, name)
})

t.test('the SecurityPolicy is invalid on Envoy Gateway 1.0, which is why 1.1 is the minimum', async (t) => {
  const v1 = compileFile('envoy-gateway-v1.1.0/gateway.envoyproxy.io_securitypolicies.v1.0.0.yaml', 'v1alpha1')
  const policy = objects.find(({ obj }) => obj.kind === 'SecurityPolicy')?.obj as Obj
  t.notOk(v1(policy), 'rejected by the 1.0 CRD')
  const paths = (v1.errors ?? []).map((e) => `${e.instancePath} ${String(e.params.additionalProperty ?? '')}`.trim())
  t.ok(paths.includes('/spec targetRefs'), 'targetRefs (1.0 had targetRef)')
  t.ok(paths.includes('/spec/extAuth failOpen'), 'failOpen')
  t.ok(paths.includes('/spec/extAuth/http backendRefs'), 'backendRefs (1.0 had backendRef)')
})
