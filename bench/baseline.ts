/** The ceiling scopegate is measured against: a bare fastify + @fastify/http-proxy with no auth at all. */
import proxy from '@fastify/http-proxy'
import Fastify from 'fastify'

const [upstream, port] = [process.argv[2] as string, Number(process.argv[3])]
const app = Fastify({ logger: false })
await app.register(proxy, { upstream, prefix: '/', undici: { connections: 128, pipelining: 1 } })
await app.listen({ host: '127.0.0.1', port })
process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
