/**
 * The Kubernetes manifests under deploy/kubernetes: every YAML file parses (all its documents), every
 * object has a known kind with its real apiVersion and the fields that kind requires, and the manifests
 * agree with scopegate itself: container ports with the config defaults in src/config/schema.ts and
 * with the config each ConfigMap carries (which must load and compile), probe and forward-auth paths
 * with what a running gateway serves, the config mount with SCOPEGATE_CONFIG, and the ingress examples
 * with the Service they call and the identity headers scopegate sets.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
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
  Kustomization: 'kustomize.config.k8s.io/v1beta1'
}

/** The listener defaults, read from the config schema rather than written down twice. */
const serverSchema = (configSchema as Obj).properties.server.properties
const DEFAULT_PROXY_PORT: number = serverSchema.proxy.properties.port.default
const DEFAULT_ADMIN_PORT: number = serverSchema.admin.properties.port.default

interface Doc { file: string, dir: string, obj: Obj }

function yamlFiles (dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return yamlFiles(path)
    return /\.ya?ml$/.test(name) ? [path] : []
  }).sort()
}

const files = yamlFiles(DEPLOY)
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
    if (obj.kind !== 'Kustomization') {
      t.match(obj.metadata?.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${file}: metadata.name`)
      if (obj.kind !== 'Namespace') t.match(obj.metadata?.namespace, /^[a-z0-9-]+$/, `${file}: metadata.namespace`)
    }
  }
})

t.test('each directory is a kustomization listing exactly its files', async (t) => {
  for (const dir of ['standalone', 'sidecar', 'ingress-nginx', 'traefik', 'envoy-gateway']) {
    const kustomization = ofKind('Kustomization', dir)[0]
    t.ok(kustomization, `${dir}/kustomization.yaml`)
    const listed = [...(kustomization?.obj.resources as string[] ?? [])].sort()
    const present = readdirSync(join(DEPLOY, dir)).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort()
    t.same(listed, present, `${dir}: resources`)
  }
})

t.test('required fields, and references that resolve', async (t) => {
  for (const { file, dir, obj } of docs) {
    const spec = obj.spec as Obj
    switch (obj.kind) {
      case 'Deployment': {
        t.ok(Object.keys(spec.selector.matchLabels).length > 0, `${file}: selector`)
        t.ok(matches(spec.selector.matchLabels, spec.template.metadata.labels), `${file}: the selector selects its own pods`)
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
    }
  }
})

t.test('scopegate containers agree with the gateway: ports, probes, config mount', async (t) => {
  t.equal(DEFAULT_PROXY_PORT, 8080, 'the schema\'s proxy default')
  t.equal(DEFAULT_ADMIN_PORT, 9090, 'the schema\'s admin default')
  const containers = scopegateContainers()
  t.equal(containers.length, 2, 'standalone and sidecar')
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string

  for (const { doc, pod, container } of containers) {
    const where = `${doc.file}`
    t.equal(portNumber(container, 'proxy'), DEFAULT_PROXY_PORT, `${where}: containerPort proxy is the default proxy port`)
    t.equal(portNumber(container, 'admin'), DEFAULT_ADMIN_PORT, `${where}: containerPort admin is the default admin port`)
    t.equal(container.livenessProbe.httpGet.path, '/healthz', `${where}: liveness /healthz`)
    t.equal(container.readinessProbe.httpGet.path, '/readyz', `${where}: readiness /readyz`)
    t.equal(portNumber(container, container.livenessProbe.httpGet.port), DEFAULT_ADMIN_PORT, `${where}: liveness on the admin port`)
    t.equal(portNumber(container, container.readinessProbe.httpGet.port), DEFAULT_ADMIN_PORT, `${where}: readiness on the admin port`)
    t.same(container.args, ['serve'], `${where}: runs scopegate serve`)
    t.equal(container.image, `scopegate:${version}`, `${where}: the image of this version`)

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
  const { container } = scopegateContainers()[0] as { container: Obj }
  t.equal((await send(gw.adminUrl, container.livenessProbe.httpGet.path)).status, 200, 'liveness path answers 200')
  t.equal((await send(gw.adminUrl, container.readinessProbe.httpGet.path)).status, 200, 'readiness path answers 200')
  const ingress = ofKind('Ingress')[0]?.obj
  const authUrl = new URL(ingress?.metadata.annotations['nginx.ingress.kubernetes.io/auth-url'])
  t.equal(authUrl.pathname, DECISIONS_PATH)
  const res = await send(gw.adminUrl, authUrl.pathname)
  t.equal(res.status, 403, 'the forward-auth path exists (a call naming no request is refused, not 404)')
  t.equal((await send(gw.adminUrl, `${DECISIONS_PATH}/open`)).status, 200, 'and decides')
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
