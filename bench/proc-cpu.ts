/**
 * CPU time of processes, read from /proc/<pid>/stat (user + system, every thread): what the benchmarks
 * trust on a shared host, where throughput is noise but the CPU a process spends per request is not.
 */
import { readdirSync, readFileSync } from 'node:fs'

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on Linux). */
const CLK_TCK = 100

/** [ppid, user + system ticks] of a process, or null when it cannot be read (no /proc, or it ended). */
function stat (pid: number | string): [number, number] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name, in parentheses, may hold spaces: the fields are counted from after it.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return [Number(fields[1]), Number(fields[11]) + Number(fields[12])]
  } catch {
    return null
  }
}

/** CPU seconds (user + system, all threads) a process has used, or null without /proc. */
export function cpuSeconds (pid: number | undefined): number | null {
  if (pid === undefined) return null
  const read = stat(pid)
  return read === null ? null : read[1] / CLK_TCK
}

/** [pid, ppid, user + system ticks] of every process /proc lists. */
function processTable (): Array<[number, number, number]> {
  const table: Array<[number, number, number]> = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const read = stat(entry)
    if (read !== null) table.push([Number(entry), ...read])
  }
  return table
}

/** CPU seconds used by `pid` and all its descendants (the cluster's primary and its workers). */
export function treeCpuSeconds (pid: number): number {
  const table = processTable()
  const tree = new Set([pid])
  for (let grew = true, pass = 0; grew && pass < 8; pass++) {
    grew = false
    for (const [child, parent] of table) if (tree.has(parent) && !tree.has(child)) { tree.add(child); grew = true }
  }
  return table.reduce((sum, [p, , ticks]) => tree.has(p) ? sum + ticks : sum, 0) / CLK_TCK
}
