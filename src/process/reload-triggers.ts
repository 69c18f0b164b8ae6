/**
 * What starts a config reload in a serving process: SIGHUP and, where this process owns the config file
 * (a single process, a cluster primary), a change of the file's content. One ConfigReloader takes
 * both, so they run one at a time (see `config/reload.ts`).
 */
import { ConfigReloader, type ReloaderOptions } from '../config/reload.js'
import { watchConfigFile } from '../config/watch.js'

export interface ReloadTriggers {
  /** Stops watching the file (at shutdown). SIGHUP stays handled: its default action would end the process. */
  close: () => void
}

/** Reloads on SIGHUP, and on a change of `options.file` when `watchFile` is true. */
export function reloadOnTriggers (options: ReloaderOptions, watchFile: boolean): ReloadTriggers {
  const reloader = new ConfigReloader(options)
  const watcher = watchFile ? watchConfigFile(options.file, () => { void reloader.reload('file') }) : null
  process.on('SIGHUP', () => {
    // The reload reads the file as it is now: a change seen next by the watcher is not a new one.
    watcher?.acknowledge()
    void reloader.reload('SIGHUP')
  })
  return { close: () => { watcher?.close() } }
}
