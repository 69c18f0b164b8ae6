/**
 * Closing a listener without cutting requests short: stop accepting at once, let the requests under way
 * finish, and close each keep-alive connection as soon as it is idle, all by a deadline.
 *
 * `fastify.close()` alone is not enough. Node closes the connections that are idle when the server
 * closes, but a connection whose request finishes afterwards stays open for its keep-alive timeout, so
 * one keep-alive client would hold the shutdown for the whole bound. Requests that arrive on an open
 * connection while closing are still answered (Fastify adds `Connection: close`).
 */
import type { FastifyInstance } from 'fastify'

/** Milliseconds between two sweeps of connections that went idle while draining. */
const SWEEP_MS = 25
/** Milliseconds granted to close hooks (e.g. the upstream connection pool) once every socket is cut. */
const HOOKS_GRACE_MS = 1000

const sleep = (ms: number): { done: Promise<void>, cancel: () => void } => {
  let timer: NodeJS.Timeout | undefined
  const done = new Promise<void>((resolve) => { timer = setTimeout(resolve, Math.max(0, ms)) })
  return { done, cancel: () => clearTimeout(timer) }
}

/**
 * Closes `app` by `deadline` (milliseconds since the epoch): at once for new connections, when their
 * request finishes for the others. Past the deadline every remaining connection is cut. Never throws.
 */
export async function closeWithin (app: FastifyInstance | null, deadline: number): Promise<void> {
  if (app === null) return
  const closed = app.close().then(() => true, () => true)
  const sweep = setInterval(() => { app.server.closeIdleConnections() }, SWEEP_MS)
  const expiry = sleep(deadline - Date.now())
  const finished = await Promise.race([closed, expiry.done.then(() => false)])
  expiry.cancel()
  clearInterval(sweep)
  if (finished) return
  app.server.closeAllConnections()
  const grace = sleep(HOOKS_GRACE_MS)
  await Promise.race([closed, grace.done])
  grace.cancel()
}
