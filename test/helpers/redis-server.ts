/**
 * A real redis-server on 127.0.0.1 and a free port, without persistence, for tests of state shared
 * between gateways. Stopped by its PID; `stop` is safe to call twice.
 */
import { spawn } from 'node:child_process'
import { Socket } from 'node:net'
import { freePort } from './echo-upstream.js'

export interface TestRedis {
  url: string
  stop: () => Promise<void>
}

/** Whether something answers PING on the port. */
function pong (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket()
    let seen = ''
    socket.setTimeout(500, () => { socket.destroy(); resolve(false) })
    socket.on('data', (chunk) => { seen += chunk.toString('latin1'); if (seen.includes('+PONG')) { socket.destroy(); resolve(true) } })
    socket.on('error', () => resolve(false))
    socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
  })
}

export async function startRedis (): Promise<TestRedis> {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  // Bounded: 50 tries, each at most 500 ms.
  for (let i = 0; i < 50 && !(await pong(port)); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  if (!(await pong(port))) {
    child.kill('SIGKILL')
    throw new Error('redis-server did not start')
  }
  return {
    url: `redis://127.0.0.1:${port}/0`,
    stop: async () => {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM')
      await exited
    }
  }
}
