/**
 * Notices when the config file's content changes, for hot reload.
 *
 * Two sources, because neither is enough alone: `fs.watch` on the file's directory is immediate and sees
 * a file replaced by rename (editors, `mv`) or a Kubernetes ConfigMap's symlink swap (`..data`); a
 * `fs.watchFile` poll sees changes where file events are not delivered (some network and container bind
 * mounts). Both only schedule a check, debounced, that compares a digest of the content: a save that
 * writes the same bytes, or a burst of events from one write, gives at most one change.
 */
import { createHash } from 'node:crypto'
import { readFileSync, unwatchFile, watch, watchFile, type FSWatcher } from 'node:fs'
import { dirname, resolve } from 'node:path'

export interface WatchOptions {
  /** Milliseconds of quiet after the last event before the file is read. Default 200. */
  debounceMs?: number
  /** Milliseconds between two polls of the file's stat. Default 2000. */
  pollMs?: number
}

export interface ConfigWatcher {
  /** Take the file's current content as seen (e.g. just before a SIGHUP reload reads it), so it does not count as a change. */
  acknowledge: () => void
  close: () => void
}

function digestOf (file: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex')
  } catch {
    // Missing for a moment while it is replaced: the event of its return triggers another check.
    return null
  }
}

/** Calls `onChange` once per change of `file`'s content, after `debounceMs` of quiet. */
export function watchConfigFile (file: string, onChange: () => void, options: WatchOptions = {}): ConfigWatcher {
  const path = resolve(file)
  const debounceMs = options.debounceMs ?? 200
  let seen = digestOf(path)
  let timer: NodeJS.Timeout | undefined
  let closed = false

  const check = (): void => {
    timer = undefined
    if (closed) return
    const digest = digestOf(path)
    if (digest === null || digest === seen) return
    seen = digest
    onChange()
  }
  const schedule = (): void => {
    if (closed) return
    clearTimeout(timer)
    timer = setTimeout(check, debounceMs)
  }

  let watcher: FSWatcher | null = null
  try {
    watcher = watch(dirname(path), { persistent: false }, schedule)
    watcher.on('error', () => { watcher?.close(); watcher = null })
  } catch {
    // No file events here (the directory cannot be watched): the poll below still notices changes.
  }
  watchFile(path, { persistent: false, interval: options.pollMs ?? 2000 }, schedule)

  return {
    acknowledge: () => { seen = digestOf(path) ?? seen },
    close: () => {
      closed = true
      clearTimeout(timer)
      watcher?.close()
      unwatchFile(path, schedule)
    }
  }
}
