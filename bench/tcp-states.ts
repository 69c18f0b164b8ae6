/**
 * Loopback TCP connections to a port, by state, from /proc/net/tcp: how many connections nginx holds
 * open to scopegate, and how many it closed recently (TIME-WAIT lasts 60 s on Linux). A proxy that closes
 * its upstream connection after each request leaves one TIME-WAIT per request.
 */
import { readFileSync } from 'node:fs'

export interface TcpStates { established: number, timeWait: number }

const ESTABLISHED = '01'
const TIME_WAIT = '06'

/**
 * Open connections whose remote end is `port` (counted once, on the client side: nginx's), and TIME-WAIT
 * entries on either end (it stays with whichever side closed first); null without /proc.
 */
export function tcpStates (port: number): TcpStates | null {
  let table: string
  try {
    table = readFileSync('/proc/net/tcp', 'utf8')
  } catch {
    return null
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  const counts = { established: 0, timeWait: 0 }
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/)
    const [local, remote, state] = [fields[1] ?? '', fields[2] ?? '', fields[3]]
    if (state === ESTABLISHED && remote.endsWith(`:${hexPort}`)) counts.established++
    else if (state === TIME_WAIT && (remote.endsWith(`:${hexPort}`) || local.endsWith(`:${hexPort}`))) counts.timeWait++
  }
  return counts
}
