/**
 * The vendored protos (proto/README.md): exactly the import closure of Envoy's external_auth.proto and of
 * gRPC's health.proto (the google/protobuf well-known types come with protobufjs), each project's licence
 * beside its files, and definitions @grpc/proto-loader loads into the Authorization and Health services the
 * ext_authz listener serves.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import * as protoLoader from '@grpc/proto-loader'

const ROOT = fileURLToPath(new URL('../../proto/', import.meta.url))
const SERVICE = 'envoy/service/auth/v3/external_auth.proto'
const HEALTH = 'grpc/health/v1/health.proto'

function protoFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return protoFiles(path)
    return entry.name.endsWith('.proto') ? [relative(ROOT, path)] : []
  })
}

/** Every file reached from `start` by `import` lines, well-known types left out. */
function closure (start: string): Set<string> {
  const seen = new Set<string>()
  const queue = [start]
  for (let i = 0; i < queue.length && i < 1000; i++) {
    const file = queue[i] as string
    if (seen.has(file) || file.startsWith('google/protobuf/')) continue
    seen.add(file)
    if (!existsSync(join(ROOT, file))) continue
    for (const match of readFileSync(join(ROOT, file), 'utf8').matchAll(/^import\s+(?:public\s+)?"([^"]+)";/gm)) queue.push(match[1] as string)
  }
  return seen
}

t.test('the vendored files are the import closure of external_auth.proto and health.proto, no more, no less', async (t) => {
  const needed = [...new Set([...closure(SERVICE), ...closure(HEALTH)])].sort()
  t.same(protoFiles(ROOT).sort(), needed)
  for (const file of needed) t.ok(existsSync(join(ROOT, file)), `${file} is vendored`)
})

t.test('each project\'s licence and commit are there', async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  for (const top of new Set(protoFiles(ROOT).map((file) => file.split('/')[0] as string))) {
    t.match(readFileSync(join(ROOT, top, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/, `${top}/LICENSE`)
    t.match(readme, new RegExp(`\`${top}/`), `${top}/ in the README`)
  }
  t.equal([...readme.matchAll(/`[0-9a-f]{40}`/g)].length, 5, 'a commit per project')
})

t.test('proto-loader loads the Authorization service with its Check method', async (t) => {
  const definition = protoLoader.loadSync(SERVICE, { includeDirs: [ROOT], keepCase: true })
  const service = definition['envoy.service.auth.v3.Authorization'] as Record<string, { path: string }>
  t.equal(service.Check?.path, '/envoy.service.auth.v3.Authorization/Check')
})

t.test('proto-loader loads the Health service with Check, List and Watch', async (t) => {
  const definition = protoLoader.loadSync(HEALTH, { includeDirs: [ROOT], keepCase: true })
  const service = definition['grpc.health.v1.Health'] as Record<string, { path: string, responseStream: boolean }>
  t.equal(service.Check?.path, '/grpc.health.v1.Health/Check')
  t.equal(service.List?.path, '/grpc.health.v1.Health/List')
  t.equal(service.Watch?.path, '/grpc.health.v1.Health/Watch')
  t.equal(service.Watch?.responseStream, true)
})
