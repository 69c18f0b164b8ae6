/**
 * The Kubernetes manifests under deploy/kubernetes: every YAML file parses (all its documents), every
 * object has a known kind with its real apiVersion and the fields that kind requires, and the manifests
 * agree with scopegate itself: container ports with the config defaults in src/config/schema.ts and
 * with the config each ConfigMap carries (which must load and compile), probe and forward-auth paths
 * with what a running gateway serves, the config mount with SCOPEGATE_CONFIG, and the ingress examples
 * with the Service they call and the identity headers scopegate sets. Each folder must also apply on a
 * fresh cluster in the documented order (standalone, then one ingress folder): every namespace, backend
 * Service, Gateway and GatewayClass it uses is created by it or by standalone, following the folders its
 * kustomization includes; and the scopegate image is named in one place, a kustomize images entry.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { IDENTITY_HEADERS, compileConfig } from '../../src/config/compile.js'
import { parseConfigText } from '../../src/config/parse.js'
import { configPath } from '../../src/config/load.js'
import { configSchema } from '../../src/config/schema.js'
import type { CompiledConfig } from '../../src/config/types.js'
import { DECISIONS_PATH } from '../../src/http/forward-auth-request.js'
import { startGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { yamlFiles } from './yaml-files.js'
import { healthClient } from '../helpers/ext-authz-client.js'

type Obj = Record<string, any>

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const DEPLOY = join(ROOT, 'deploy', 'kubernetes')

/** The apiVersion each kind is served under by current Kubernetes and the ingress projects. */
const API_VERSIONS: Record<string, string> = {
  Namespace: 'v1',
  ConfigMap: 'v1',
  Service: 'v1',
  Deployment: 'apps/v1',
  HorizontalPodAutoscaler: 'autoscaling/v2',
  PodDisruptionBudget: 'policy/v1',
  NetworkPolicy: 'networking.k8s.io/v1',
  Ingress: 'networking.k8s.io/v1',
  Middleware: 'traefik.io/v1alpha1',
  IngressRoute: 'traefik.io/v1alpha1',
  HTTPRoute: 'gateway.networking.k8s.io/v1',
  ReferenceGrant: 'gateway.networking.k8s.io/v1beta1',
  SecurityPolicy: 'gateway.envoyproxy.io/v1alpha1',
  GatewayClass: 'gateway.networking.k8s.io/v1',
  Gateway: 'gateway.networking.k8s.io/v1',
  Job: 'batch/v1',
  Policy: 'k8s.nginx.org/v1',
  AuthorizationPolicy: 'security.istio.io/v1',
  Kustomization: 'kustomize.config.k8s.io/v1beta1',
  Component: 'kustomize.config.k8s.io/v1alpha1',
  ServiceMonitor: 'monitoring.coreos.com/v1'
}

/** Kinds that live in no namespace. */
const CLUSTER_SCOPED = new Set(['Namespace', 'GatewayClass'])
/** The folders an operator applies, and the ingress folders among them (each applied after standalone). */
const INGRESS_DIRS = ['ingress-nginx', 'f5-nginx-ingress', 'traefik', 'envoy-gateway', 'istio']

/** The listener defaults, read from the config schema rather than written down twice. */
const serverSchema = (configSchema as Obj).properties.server.properties
const DEFAULT_PROXY_PORT: number = serverSchema.proxy.properties.port.default
const DEFAULT_ADMIN_PORT: number = serverSchema.admin.properties.port.default

interface Doc { file: string, dir: string, obj: Obj }

/** Helm values files (`*-values.yaml`) are not Kubernetes objects: checked by their own test below. */
const isValues = (file: string): boolean => file.endsWith('-values.yaml')
const files = yamlFiles(DEPLOY).filter((file) => !isValues(file))
const docs: Doc[] = []
for (const file of files) {
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    if (doc.errors.length > 0) continue // reported by the parse test
    const obj = doc.toJS() as Obj | null
    if (obj !== null) docs.push({ file: relative(DEPLOY, file), dir: relative(DEPLOY, dirname(file)), obj })
  }
}
const ofKind = (kind: string, dir?: string): Doc[] => docs.filter((d) => d.obj.kind === kind && (dir === undefined || d.dir === dir))
const named = (kind: string, name: string, dir: string): Doc | undefined => ofKind(kind, dir).find((d) => d.obj.metadata?.name === name)
const matches = (selector: Obj, labels: Obj): boolean => Object.entries(selector).every(([k, v]) => labels?.[k] === v)
const lower = (list: string[]): string[] => list.map((h) => h.toLowerCase()).sort()
const identity = [...IDENTITY_HEADERS].sort()

/** A container's port number for a probe or Service `port`/`targetPort`: a number, or a port name. */
function portNumber (container: Obj, port: number | string): number | undefined {
  if (typeof port === 'number') return port
  return (container.ports as Obj[] | undefined)?.find((p) => p.name === port)?.containerPort
}

function scopegateContainers (): Array<{ doc: Doc, pod: Obj, container: Obj }> {
  return ofKind('Deployment').flatMap((doc) => {
    const pod = doc.obj.spec.template.spec
    return (pod.containers as Obj[]).filter((c) => c.name === 'scopegate').map((container) => ({ doc, pod, container }))
  })
}

/** The config a scopegate container runs with: SCOPEGATE_CONFIG → volume mount → ConfigMap key, loaded and compiled. */
function configOf (doc: Doc, pod: Obj, container: Obj): { path: string, text: string, compiled: CompiledConfig } {
  const env = Object.fromEntries((container.env as Obj[]).map((e) => [e.name, e.value]))
  const path = configPath(undefined, env)
  const mount = (container.volumeMounts as Obj[]).find((m) => m.mountPath === dirname(path))
  if (mount === undefined) throw new Error(`${doc.file}: nothing is mounted at ${dirname(path)}`)
  const volume = (pod.volumes as Obj[]).find((v) => v.name === mount.name)
  const map = named('ConfigMap', volume?.configMap?.name, doc.dir)
  const text = map?.obj.data?.[basename(path)]
  if (typeof text !== 'string') throw new Error(`${doc.file}: ConfigMap ${String(volume?.configMap?.name)} has no key ${basename(path)}`)
  return { path, text, compiled: compileConfig(parseConfigText(text, basename(path), {}), basename(path)) }
}

t.test('every file parses, every object has a known kind and its apiVersion', async (t) => {
  t.ok(files.length >= 15, `${files.length} files`)
  for (const file of files) {
    const all = parseAllDocuments(readFileSync(file, 'utf8'))
    t.ok(all.length > 0, `${relative(DEPLOY, file)}: at least one document`)
    for (const doc of all) {
      t.same(doc.errors.map((e) => e.message), [], `${relative(DEPLOY, file)}: no YAML errors`)
      t.same(doc.warnings.map((e) => e.message), [], `${relative(DEPLOY, file)}: no YAML warnings`)
    }
  }
  for (const { file, obj } of docs) {
    t.type(obj, 'object', `${file}: an object`)
    t.ok(obj.kind in API_VERSIONS, `${file}: known kind ${String(obj.kind)}`)
    t.equal(obj.apiVersion, API_VERSIONS[obj.kind], `${file}: ${String(obj.kind)} is ${API_VERSIONS[obj.kind]}`)
    if (obj.kind !== 'Kustomization' && obj.kind !== 'Component') {
      t.match(obj.metadata?.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${file}: metadata.name`)
      if (!CLUSTER_SCOPED.has(obj.kind)) t.match(obj.metadata?.namespace, /^[a-z0-9-]+$/, `${file}: metadata.namespace`)
    }
  }
})

const DIRS = readdirSync(DEPLOY).filter((d) => statSync(join(DEPLOY, d)).isDirectory()).sort()
const kustomizationOf = (dir: string): Obj | undefined => docs.find((d) => d.dir === dir && basename(d.file) === 'kustomization.yaml')?.obj
/** A folder's objects with those of every folder its kustomization includes (`../example-app`), as kustomize builds it. */
function built (dir: string, seen = new Set<string>()): Doc[] {
  if (seen.has(dir)) return []
  seen.add(dir)
  const k = kustomizationOf(dir)
  const included = [...(k?.resources as string[] ?? []), ...(k?.components as string[] ?? [])].filter((r) => r.startsWith('../')).map((r) => r.slice(3))
  return [...docs.filter((d) => d.dir === dir && basename(d.file) !== 'kustomization.yaml'), ...included.flatMap((d) => built(d, seen))]
}

t.test('each directory is a kustomization listing exactly its files, and the folders it includes exist', async (t) => {
  t.same(DIRS, ['envoy-gateway', 'example-app', 'f5-nginx-ingress', 'ingress-nginx', 'istio', 'monitoring', 'probe', 'scopegate-image', 'sidecar', 'standalone', 'traefik'])
  for (const dir of DIRS) {
    const kustomization = kustomizationOf(dir)
    t.ok(kustomization, `${dir}/kustomization.yaml`)
    const resources = kustomization?.resources as string[] ?? []
    const listed = resources.filter((r) => !r.startsWith('../')).sort()
    const present = readdirSync(join(DEPLOY, dir)).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml' && !isValues(f)).sort()
    t.same(listed, present, `${dir}: resources`)
    for (const ref of [...resources.filter((r) => r.startsWith('../')), ...(kustomization?.components as string[] ?? [])]) {
      t.ok(existsSync(join(DEPLOY, dir, ref, 'kustomization.yaml')), `${dir}: ${ref} is a kustomization`)
    }
    for (const c of kustomization?.components as string[] ?? []) t.equal(kustomizationOf(c.slice(3))?.kind, 'Component', `${dir}: ${c} is a Component`)
  }
})

t.test('the scopegate image is set in one place, a kustomize images entry with a registry, and every folder running it includes it', async (t) => {
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string
  const images = kustomizationOf('scopegate-image')?.images as Obj[]
  t.equal(images.length, 1, 'one images entry')
  t.equal(images[0]?.name, 'scopegate', 'it rewrites the name the manifests use')
  t.equal(images[0]?.newTag, version, 'the tag of this version')
  t.match(images[0]?.newName, /^[a-z0-9.-]+\.[a-z]+(:\d+)?\/[a-z0-9/._-]+$/, 'a name with a registry host: not docker.io/library/scopegate')
  for (const dir of DIRS) {
    for (const { file, obj } of docs.filter((d) => d.dir === dir && (d.obj.kind === 'Deployment' || d.obj.kind === 'Job'))) {
      for (const c of obj.spec.template.spec.containers as Obj[]) {
        if (!/^scopegate(:|$)/.test(c.image)) continue
        t.equal(c.image, 'scopegate', `${file}: ${String(c.name)} names the image only (the tag is the images entry's)`)
        t.ok((kustomizationOf(dir)?.components as string[] ?? []).includes('../scopegate-image'), `${dir}: includes ../scopegate-image`)
      }
    }
  }
  const kinds = docs.filter((d) => d.obj.kind === 'Deployment' || d.obj.kind === 'Job').flatMap((d) => (d.obj.spec.template.spec.containers as Obj[]).map((c) => c.image as string))
  t.notOk(kinds.some((image) => /^scopegate:/.test(image)), 'no manifest pins scopegate:<tag> on its own')
})

t.test('each ingress folder applies after standalone alone: its namespaces, Services and Gateways exist', async (t) => {
  const base = built('standalone')
  for (const dir of INGRESS_DIRS) {
    const objects = [...built(dir), ...base]
    const namespaces = new Set(objects.filter((d) => d.obj.kind === 'Namespace').map((d) => d.obj.metadata.name as string))
    const find = (kind: string, name: string, namespace?: string): Obj | undefined =>
      objects.find((d) => d.obj.kind === kind && d.obj.metadata?.name === name && d.obj.metadata?.namespace === namespace)?.obj
    for (const { file, obj } of built(dir)) {
      if (obj.metadata?.namespace !== undefined) t.ok(namespaces.has(obj.metadata.namespace), `${dir}: ${file}: namespace ${String(obj.metadata.namespace)} is created`)
    }
    const backends: Array<[string, string, string | undefined]> = []
    for (const { obj } of built(dir)) {
      const ns = obj.metadata?.namespace as string | undefined
      if (obj.kind === 'Ingress') for (const r of obj.spec.rules as Obj[]) for (const p of r.http.paths as Obj[]) backends.push([dir, p.backend.service.name, ns])
      if (obj.kind === 'IngressRoute') for (const r of obj.spec.routes as Obj[]) for (const s of r.services as Obj[]) backends.push([dir, s.name, ns])
      // Istio: the policy guards the workloads it selects; their Service is the backend.
      if (obj.kind === 'AuthorizationPolicy') {
        const pods = objects.filter((d) => d.obj.kind === 'Deployment' && d.obj.metadata.namespace === ns && matches(obj.spec.selector.matchLabels, d.obj.spec.template.metadata.labels))
        for (const service of objects.filter((d) => d.obj.kind === 'Service' && d.obj.metadata.namespace === ns)) {
          if (pods.some((d) => matches(service.obj.spec.selector, d.obj.spec.template.metadata.labels))) backends.push([dir, service.obj.metadata.name, ns])
        }
      }
      if (obj.kind === 'HTTPRoute') {
        for (const r of obj.spec.rules as Obj[]) for (const b of r.backendRefs as Obj[]) backends.push([dir, b.name, b.namespace ?? ns])
        for (const ref of obj.spec.parentRefs as Obj[]) {
          const gateway = find('Gateway', ref.name, ref.namespace ?? ns)
          t.ok(gateway, `${dir}: the HTTPRoute's Gateway ${String(ref.name)} is in the folder`)
          t.ok(find('GatewayClass', gateway?.spec.gatewayClassName), `${dir}: its GatewayClass is in the folder`)
          const listener = (gateway?.spec.listeners as Obj[] ?? []).find((l) => ref.sectionName === undefined || l.name === ref.sectionName)
          const from = listener?.allowedRoutes?.namespaces?.from ?? 'Same'
          t.ok(from === 'All' || (from === 'Same' && (gateway?.metadata.namespace === ns)), `${dir}: the listener admits routes from namespace ${String(ns)}`)
        }
      }
    }
    t.ok(backends.length > 0, `${dir}: routes to a backend`)
    for (const [where, name, ns] of backends) t.ok(find('Service', name, ns), `${where}: backend Service ${name} in ${String(ns)} is created`)
  }
})

t.test('required fields, and references that resolve', async (t) => {
  for (const { file, dir, obj } of docs) {
    const spec = obj.spec as Obj
    switch (obj.kind) {
      case 'Job':
      case 'Deployment': {
        if (obj.kind === 'Deployment') {
          t.ok(Object.keys(spec.selector.matchLabels).length > 0, `${file}: selector`)
          t.ok(matches(spec.selector.matchLabels, spec.template.metadata.labels), `${file}: the selector selects its own pods`)
        }
        for (const c of spec.template.spec.containers as Obj[]) {
          t.ok(c.name && c.image, `${file}: container ${String(c.name)} has a name and an image`)
          t.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${file}: ${String(c.name)} resource requests`)
          t.ok(c.resources?.limits?.memory, `${file}: ${String(c.name)} memory limit`)
          t.equal(c.securityContext?.allowPrivilegeEscalation, false, `${file}: ${String(c.name)} no privilege escalation`)
          t.equal(c.securityContext?.readOnlyRootFilesystem, true, `${file}: ${String(c.name)} read-only root filesystem`)
          t.same(c.securityContext?.capabilities?.drop, ['ALL'], `${file}: ${String(c.name)} drops every capability`)
        }
        t.equal(spec.template.spec.securityContext?.runAsNonRoot, true, `${file}: runAsNonRoot`)
        t.ok(spec.template.spec.securityContext?.runAsUser > 0, `${file}: a non-root uid`)
        break
      }
      case 'Service': {
        const pods = ofKind('Deployment', dir).filter((d) => matches(obj.spec.selector, d.obj.spec.template.metadata.labels))
        t.equal(pods.length, 1, `${file}: selects one Deployment's pods`)
        for (const port of spec.ports as Obj[]) {
          const target = (pods[0]?.obj.spec.template.spec.containers as Obj[] ?? []).map((c) => portNumber(c, port.targetPort)).find((p) => p !== undefined)
          t.ok(target, `${file}: port ${String(port.name)} targets a container port`)
        }
        break
      }
      case 'HorizontalPodAutoscaler': {
        t.equal(spec.scaleTargetRef.apiVersion, 'apps/v1', `${file}: scales a Deployment`)
        t.ok(named('Deployment', spec.scaleTargetRef.name, dir), `${file}: Deployment ${String(spec.scaleTargetRef.name)} exists`)
        t.ok(spec.minReplicas >= 2 && spec.minReplicas <= spec.maxReplicas, `${file}: 2 <= minReplicas <= maxReplicas`)
        t.ok((spec.metrics as Obj[]).length > 0, `${file}: metrics`)
        break
      }
      case 'PodDisruptionBudget': {
        const deployment = ofKind('Deployment', dir).find((d) => matches(spec.selector.matchLabels, d.obj.spec.template.metadata.labels))
        t.ok(deployment, `${file}: selects a Deployment's pods`)
        const hpa = ofKind('HorizontalPodAutoscaler', dir)[0]
        const floor = Math.min(deployment?.obj.spec.replicas ?? 1, hpa?.obj.spec.minReplicas ?? Infinity)
        t.ok(spec.minAvailable < floor, `${file}: minAvailable ${String(spec.minAvailable)} leaves room to evict (replicas >= ${floor})`)
        break
      }
      case 'ConfigMap':
        t.ok(obj.data && Object.keys(obj.data).length > 0, `${file}: data`)
        break
      case 'NetworkPolicy':
        t.ok(spec.podSelector, `${file}: podSelector`)
        t.ok(Array.isArray(spec.policyTypes), `${file}: policyTypes`)
        break
      case 'Ingress':
        for (const rule of spec.rules as Obj[]) {
          for (const path of rule.http.paths as Obj[]) {
            t.ok(path.pathType && path.backend.service.name && path.backend.service.port.number, `${file}: path ${String(path.path)} backend`)
          }
        }
        break
      case 'IngressRoute':
        for (const route of spec.routes as Obj[]) {
          t.equal(route.kind, 'Rule', `${file}: route kind`)
          t.ok(route.match && (route.services as Obj[]).length > 0, `${file}: match and services`)
          for (const m of route.middlewares as Obj[]) t.ok(named('Middleware', m.name, dir), `${file}: Middleware ${String(m.name)} exists`)
        }
        break
      case 'Middleware':
        t.ok(spec.forwardAuth?.address, `${file}: forwardAuth.address`)
        break
      case 'HTTPRoute':
        t.ok((spec.parentRefs as Obj[]).length > 0 && (spec.rules as Obj[]).length > 0, `${file}: parentRefs and rules`)
        break
      case 'SecurityPolicy':
        for (const ref of spec.targetRefs as Obj[]) t.ok(named(ref.kind, ref.name, dir), `${file}: target ${String(ref.kind)} ${String(ref.name)} exists`)
        t.ok(spec.extAuth?.http?.backendRefs?.length > 0, `${file}: extAuth.http.backendRefs`)
        break
      case 'ReferenceGrant':
        t.ok((spec.from as Obj[]).length > 0 && (spec.to as Obj[]).length > 0, `${file}: from and to`)
        break
      case 'ServiceMonitor': {
        // Applied after standalone: it selects standalone's Service, by label, in the namespaces it names.
        const services = ofKind('Service', 'standalone').filter((d) => matches(spec.selector.matchLabels, d.obj.metadata.labels) &&
          (spec.namespaceSelector?.matchNames as string[] ?? [obj.metadata.namespace]).includes(d.obj.metadata.namespace))
        t.equal(services.length, 1, `${file}: selects standalone's Service`)
        for (const endpoint of spec.endpoints as Obj[]) {
          const port = (services[0]?.obj.spec.ports as Obj[] ?? []).find((p) => p.name === endpoint.port)
          t.equal(port?.port, DEFAULT_ADMIN_PORT, `${file}: scrapes the Service's admin port`)
          t.equal(endpoint.path, '/metrics', `${file}: at /metrics`)
        }
        break
      }
    }
  }
})

t.test('scopegate containers agree with the gateway: ports, probes, config mount', async (t) => {
  t.equal(DEFAULT_PROXY_PORT, 8080, 'the schema\'s proxy default')
  t.equal(DEFAULT_ADMIN_PORT, 9090, 'the schema\'s admin default')
  const containers = scopegateContainers()
  t.equal(containers.length, 3, 'standalone, sidecar and istio')

  for (const { doc, pod, container } of containers) {
    const where = `${doc.file}`
    t.equal(portNumber(container, 'proxy'), DEFAULT_PROXY_PORT, `${where}: containerPort proxy is the default proxy port`)
    t.equal(portNumber(container, 'admin'), DEFAULT_ADMIN_PORT, `${where}: containerPort admin is the default admin port`)
    t.equal(container.livenessProbe.httpGet.path, '/healthz', `${where}: liveness /healthz`)
    t.equal(portNumber(container, container.livenessProbe.httpGet.port), DEFAULT_ADMIN_PORT, `${where}: liveness on the admin port`)
    if (container.readinessProbe.grpc === undefined) {
      t.equal(container.readinessProbe.httpGet.path, '/readyz', `${where}: readiness /readyz`)
      t.equal(portNumber(container, container.readinessProbe.httpGet.port), DEFAULT_ADMIN_PORT, `${where}: readiness on the admin port`)
    } else {
      // The gRPC health service of the ext_authz listener (docs/istio.md#health-checks): istio's, checked below.
      t.equal(doc.dir, 'istio', `${where}: a grpc readiness probe only where the ext_authz listener is`)
    }
    t.same(container.args, ['serve'], `${where}: runs scopegate serve`)

    const { path, compiled } = configOf(doc, pod, container)
    t.equal(path, '/etc/scopegate/scopegate.yaml', `${where}: SCOPEGATE_CONFIG is the mounted file`)
    t.equal(compiled.server.proxy.port, portNumber(container, 'proxy'), `${where}: the config's proxy port is the containerPort`)
    t.equal(compiled.server.admin.port, portNumber(container, 'admin'), `${where}: the config's admin port is the containerPort`)
    t.equal(compiled.server.proxy.host, '0.0.0.0', `${where}: proxy listens on every interface`)
    t.equal(compiled.server.admin.host, '0.0.0.0', `${where}: admin listens on every interface (probes come from the kubelet)`)
    const mount = (container.volumeMounts as Obj[]).find((m) => m.mountPath === dirname(path))
    t.equal(mount?.readOnly, true, `${where}: the config is mounted read-only`)
    t.notOk(mount?.subPath, `${where}: no subPath, so ConfigMap updates reach the file (and a reload)`)

    const preStop = Number(container.lifecycle?.preStop?.exec?.command?.[1] ?? 0)
    t.ok(pod.terminationGracePeriodSeconds > preStop + compiled.server.shutdownTimeoutMs / 1000,
      `${where}: the grace period (${String(pod.terminationGracePeriodSeconds)} s) covers preStop (${preStop} s) and shutdownTimeout`)
  }
})

t.test('the probe and forward-auth paths are served by a running gateway\'s admin listener', async (t) => {
  const gw = await startGateway({ upstreams: { u: { url: 'http://127.0.0.1:9' } }, routes: [{ id: 'open', match: { path: '/open' }, upstream: 'u', auth: 'none' }] })
  t.teardown(() => gw.close())
  const { container } = scopegateContainers().find((c) => c.container.readinessProbe.httpGet !== undefined) as { container: Obj }
  t.equal((await send(gw.adminUrl, container.livenessProbe.httpGet.path)).status, 200, 'liveness path answers 200')
  t.equal((await send(gw.adminUrl, container.readinessProbe.httpGet.path)).status, 200, 'readiness path answers 200')
  const ingress = ofKind('Ingress', 'ingress-nginx')[0]?.obj
  const authUrl = new URL(ingress?.metadata.annotations['nginx.ingress.kubernetes.io/auth-url'])
  t.equal(authUrl.pathname, DECISIONS_PATH)
  const res = await send(gw.adminUrl, authUrl.pathname)
  t.equal(res.status, 403, 'the forward-auth path exists (a call naming no request is refused, not 404)')
  t.equal((await send(gw.adminUrl, `${DECISIONS_PATH}/open`)).status, 200, 'and decides')
})

t.test('istio: the grpc readiness probe is answered SERVING by a running gateway\'s ext_authz listener', async (t) => {
  const { container } = scopegateContainers().find((c) => c.doc.dir === 'istio') as { container: Obj }
  const gw = await startGateway({
    server: { extAuthz: { host: '127.0.0.1', port: 0 } },
    upstreams: { u: { url: 'http://127.0.0.1:9' } },
    routes: [{ id: 'open', match: { path: '/open' }, upstream: 'u', auth: 'none' }]
  })
  t.teardown(() => gw.close())
  const health = healthClient(`127.0.0.1:${gw.gateway.extAuthz?.boundPort ?? 0}`)
  t.teardown(() => health.close())
  t.same(await health.check(container.readinessProbe.grpc.service ?? ''), { status: 'SERVING' }, 'the service the probe asks about is SERVING')
})

t.test('standalone: Service ports, trust for forward auth', async (t) => {
  const { doc, pod, container } = scopegateContainers().find((c) => c.doc.dir === 'standalone') as { doc: Doc, pod: Obj, container: Obj }
  const service = ofKind('Service', 'standalone')[0]?.obj as Obj
  const ports = Object.fromEntries((service.spec.ports as Obj[]).map((p) => [p.name, p]))
  t.equal(portNumber(container, ports.proxy?.targetPort), DEFAULT_PROXY_PORT, 'Service port proxy reaches the proxy listener')
  t.equal(portNumber(container, ports.admin?.targetPort), DEFAULT_ADMIN_PORT, 'Service port admin reaches the admin listener')
  const { compiled } = configOf(doc, pod, container)
  t.ok(compiled.server.trustProxy !== null && compiled.server.trustProxy.cidrs.length > 0,
    'trustProxy names the ingress network: nginx and Traefik headers are believed only from there')
})

t.test('sidecar: only scopegate\'s port is exposed; the app is on loopback', async (t) => {
  const { doc, pod, container } = scopegateContainers().find((c) => c.doc.dir === 'sidecar') as { doc: Doc, pod: Obj, container: Obj }
  const others = (pod.containers as Obj[]).filter((c) => c.name !== 'scopegate')
  t.equal(others.length, 1, 'one app container')
  for (const app of others) t.notOk(app.ports, `${app.name as string} declares no port`)
  const services = ofKind('Service', 'sidecar')
  t.equal(services.length, 1)
  for (const port of services[0]?.obj.spec.ports as Obj[]) {
    t.equal(portNumber(container, port.targetPort), DEFAULT_PROXY_PORT, `Service port ${String(port.name)} targets scopegate's proxy port only`)
  }
  const { compiled } = configOf(doc, pod, container)
  for (const upstream of compiled.upstreams.values()) t.match(upstream.base, /^http:\/\/127\.0\.0\.1:\d+$/, `upstream ${upstream.id} is the app on loopback`)
  const policy = ofKind('NetworkPolicy', 'sidecar')[0]?.obj
  const admitted = (policy?.spec.ingress as Obj[]).flatMap((rule) => (rule.ports as Obj[]).map((p) => p.port)).sort()
  t.same(admitted, [DEFAULT_PROXY_PORT, DEFAULT_ADMIN_PORT], 'the NetworkPolicy admits scopegate\'s ports and nothing else')
  const metrics = (policy?.spec.ingress as Obj[]).find((rule) => (rule.ports as Obj[]).some((p) => p.port === DEFAULT_ADMIN_PORT))
  const scrapers = (metrics?.from as Obj[] ?? []).filter((peer) => peer.namespaceSelector !== undefined)
  t.equal(scrapers.length, 1, 'one rule names the namespace allowed to scrape /metrics')
  t.ok(Object.keys(scrapers[0]?.namespaceSelector.matchLabels ?? {}).length > 0, 'by label, not every namespace')
})

t.test('ingress examples call the standalone Service\'s admin port at /decisions and copy every identity header', async (t) => {
  const service = ofKind('Service', 'standalone')[0]?.obj as Obj
  const admin = (service.spec.ports as Obj[]).find((p) => p.name === 'admin') as Obj
  const host = `${service.metadata.name as string}.${service.metadata.namespace as string}.svc.cluster.local`
  const expectCall = (where: string, url: URL): void => {
    t.equal(url.hostname, host, `${where}: the scopegate Service`)
    t.equal(Number(url.port), admin.port, `${where}: its admin port`)
    t.equal(url.pathname, DECISIONS_PATH, `${where}: /decisions, no trailing slash`)
  }

  const ingress = ofKind('Ingress', 'ingress-nginx')[0]?.obj as Obj
  const annotations = ingress.metadata.annotations as Record<string, string>
  expectCall('ingress-nginx auth-url', new URL(annotations['nginx.ingress.kubernetes.io/auth-url'] as string))
  t.same(lower((annotations['nginx.ingress.kubernetes.io/auth-response-headers'] ?? '').split(',').map((h) => h.trim())), identity,
    'auth-response-headers: every identity header')
  const cacheKey = annotations['nginx.ingress.kubernetes.io/auth-cache-key'] ?? ''
  for (const part of ['$http_authorization', '$request_method', '$request_uri']) t.ok(cacheKey.includes(part), `auth-cache-key includes ${part}`)
  t.match(cacheKey, /^[A-Za-z0-9\-_${}]*$/, 'auth-cache-key uses only characters ingress-nginx accepts')
  t.ok(Number(annotations['nginx.ingress.kubernetes.io/auth-keepalive']) > 0, 'auth-keepalive: decisions reuse connections to scopegate')

  const f5 = ofKind('Policy', 'f5-nginx-ingress')[0]?.obj.spec.externalAuth as Obj
  t.equal(f5.authServiceName, `${service.metadata.namespace as string}/${service.metadata.name as string}`, 'F5 NGINX: the scopegate Service')
  t.same(f5.authServicePorts, [admin.port], 'F5 NGINX: its admin port')
  t.equal(f5.authURI, DECISIONS_PATH, 'F5 NGINX: /decisions, no trailing slash')
  const authSnippets = (f5.authSnippets as string).split('\n').map((l) => l.trim()).filter((l) => l !== '')
  for (const line of ['proxy_pass_request_headers off;', 'proxy_set_header Authorization $http_authorization;',
    'proxy_set_header X-Original-Method $request_method;', 'proxy_set_header X-Original-URI $request_uri;']) {
    t.ok(authSnippets.includes(line), `F5 NGINX authSnippets: ${line}`)
  }
  const f5Ingress = ofKind('Ingress', 'f5-nginx-ingress')[0]?.obj as Obj
  t.equal(f5Ingress.metadata.annotations['nginx.org/policies'], ofKind('Policy', 'f5-nginx-ingress')[0]?.obj.metadata.name, 'F5 NGINX: the Ingress names the Policy')
  const copied = [...(f5Ingress.metadata.annotations['nginx.org/location-snippets'] as string).matchAll(/^\s*proxy_set_header (x-auth-[a-z-]+) \$(\S+);$/gm)]
  t.same(lower(copied.map((m) => m[1] as string)), identity, 'F5 NGINX location-snippets: every identity header')

  const middleware = ofKind('Middleware', 'traefik')[0]?.obj as Obj
  expectCall('Traefik forwardAuth.address', new URL(middleware.spec.forwardAuth.address))
  t.same(lower(middleware.spec.forwardAuth.authResponseHeaders), identity, 'authResponseHeaders: every identity header')
  t.equal(middleware.spec.forwardAuth.trustForwardHeader, false, 'Traefik does not pass on client X-Forwarded-* headers')

  const policy = ofKind('SecurityPolicy', 'envoy-gateway')[0]?.obj as Obj
  const http = policy.spec.extAuth.http as Obj
  const ref = http.backendRefs[0] as Obj
  t.equal(`${ref.name as string}.${ref.namespace as string}.svc.cluster.local`, host, 'Envoy Gateway: the scopegate Service')
  t.equal(ref.port, admin.port, 'Envoy Gateway: its admin port')
  t.equal(http.path, DECISIONS_PATH, 'Envoy Gateway: path /decisions (a prefix: the original path follows)')
  t.same(lower(http.headersToBackend), identity, 'headersToBackend: every identity header')
  t.equal(policy.spec.extAuth.failOpen, false, 'fails closed')
  const grant = ofKind('ReferenceGrant', 'envoy-gateway')[0]?.obj as Obj
  t.equal(grant.metadata.namespace, ref.namespace, 'the ReferenceGrant lives where the Service is')
  t.match(grant.spec.from, [{ kind: 'SecurityPolicy', namespace: policy.metadata.namespace }])
  t.match(grant.spec.to, [{ kind: 'Service', name: ref.name }])
})

t.test('the image (the repository\'s Dockerfile) runs what the manifests expect', async (t) => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
  t.match(dockerfile, new RegExp(`EXPOSE ${DEFAULT_PROXY_PORT} ${DEFAULT_ADMIN_PORT}`), 'exposes the default ports')
  t.match(dockerfile, /ENTRYPOINT \["node", "dist\/cli\.js"\]/, 'the entrypoint is the CLI, so args: [serve] runs scopegate serve')
  // USER node: the official Node image's user, uid and gid 1000.
  t.match(dockerfile, /^USER node$/m, 'the image runs as node')
  for (const { doc, pod } of scopegateContainers()) {
    t.equal(pod.securityContext.runAsUser, 1000, `${doc.file}: runAsUser is node's uid`)
    t.equal(pod.securityContext.runAsGroup, 1000, `${doc.file}: runAsGroup is node's gid`)
  }
})

t.test('istio: the mesh\'s provider reaches the ext_authz listener, and the policy selects the app through it', async (t) => {
  const { doc, pod, container } = scopegateContainers().find((c) => c.doc.dir === 'istio') as { doc: Doc, pod: Obj, container: Obj }
  const { compiled } = configOf(doc, pod, container)
  const extAuthz = compiled.server.extAuthz
  t.ok(extAuthz, 'the config opens the ext_authz listener')
  t.equal(portNumber(container, 'ext-authz'), extAuthz?.port, 'containerPort ext-authz is the config\'s server.extAuthz.port')
  t.equal(pod.metadata?.annotations?.['sidecar.istio.io/inject'] ?? doc.obj.spec.template.metadata?.annotations?.['sidecar.istio.io/inject'], 'false',
    'outside the mesh: the sidecars\' own addresses reach it, for server.trustProxy')
  const service = ofKind('Service', 'istio')[0]?.obj as Obj
  t.ok(matches(service.spec.selector, doc.obj.spec.template.metadata.labels), 'the Service selects the ext_authz Deployment only')
  t.notOk(matches(named('Service', 'scopegate', 'standalone')?.obj.spec.selector ?? {}, doc.obj.spec.template.metadata.labels), 'standalone\'s Service does not select it')
  const grpc = (service.spec.ports as Obj[]).find((p) => p.appProtocol === 'grpc') as Obj
  t.match(grpc.name, /^grpc-/, 'Istio reads the protocol from the port name too')
  t.equal(portNumber(container, grpc.targetPort), extAuthz?.port, 'the gRPC Service port reaches the listener')
  const probe = container.readinessProbe.grpc as Obj
  t.equal(probe?.port, extAuthz?.port, 'readiness: the gRPC health service on the ext_authz port (a number: grpc probes take no port name)')
  t.equal(probe?.service ?? '', '', 'asking about the server as a whole')
  t.equal(extAuthz?.tls, null, 'a plaintext listener: the kubelet\'s grpc probe has no TLS')
  t.equal(container.livenessProbe.httpGet.path, '/healthz', 'liveness stays /healthz: not ready must not mean restarted')

  const values = parseAllDocuments(readFileSync(join(DEPLOY, 'istio', 'istiod-values.yaml'), 'utf8'))
  t.equal(values.length, 1)
  t.same(values[0]?.errors.map((e) => e.message), [])
  const providers = (values[0]?.toJS() as Obj).meshConfig.extensionProviders as Obj[]
  const provider = providers.find((p) => p.envoyExtAuthzGrpc !== undefined) as Obj
  const grpcProvider = provider.envoyExtAuthzGrpc as Obj
  t.same(Object.keys(grpcProvider).filter((k) => !['service', 'port', 'timeout', 'failOpen', 'clearRouteCache', 'statusOnError', 'includeRequestBodyInCheck'].includes(k)), [],
    'only fields of Istio\'s EnvoyExternalAuthorizationGrpcProvider')
  t.equal(grpcProvider.service, `${String(service.metadata.name)}.${String(service.metadata.namespace)}.svc.cluster.local`, 'the provider names the Service')
  t.equal(grpcProvider.port, grpc.port, 'and its gRPC port')
  t.equal(grpcProvider.failOpen, false, 'scopegate unreachable: deny')
  t.match(grpcProvider.timeout, /^[0-9]+(ms|s)$/)

  const policies = ofKind('AuthorizationPolicy', 'istio')
  t.equal(policies.length, 1)
  const policy = policies[0]?.obj as Obj
  t.equal(policy.spec.action, 'CUSTOM')
  t.equal(policy.spec.provider.name, provider.name, 'the policy uses the provider the mesh declares')
  const app = built('istio').find((d) => d.obj.kind === 'Deployment' && d.obj.metadata.namespace === policy.metadata.namespace)
  t.ok(app !== undefined && matches(policy.spec.selector.matchLabels, app.obj.spec.template.metadata.labels), 'it selects the example app, in its namespace')
})
