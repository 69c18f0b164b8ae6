/**
 * A server-sent events client for tests (the status page's live feed): it records every event and
 * comment as it arrives, and waits for one with a bound on time, never a sleep.
 */
import http from 'node:http'

export interface ServerEvent {
  event: string
  data: string
}

export interface EventStream {
  status: number
  headers: http.IncomingHttpHeaders
  /** The body, when the answer is not an event stream. */
  body: () => string
  events: ServerEvent[]
  /** Comment lines (`: heartbeat`), without the colon. */
  comments: string[]
  /** Resolves with the first event (or comment, as `{event: 'comment'}`) `match` accepts; rejects after `timeoutMs`. */
  waitFor: (match: (event: ServerEvent) => boolean, timeoutMs?: number) => Promise<ServerEvent>
  /** Resolves true when the server ends the stream within `timeoutMs`, false otherwise. */
  ended: (timeoutMs?: number) => Promise<boolean>
  close: () => void
}

export function openEvents (base: string, headers: Record<string, string> = {}, path = '/status/events'): Promise<EventStream> {
  const url = new URL(path, base)
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      const events: ServerEvent[] = []
      const comments: string[] = []
      const waiters = new Set<() => void>()
      let buffer = ''
      let raw = ''
      let done = false
      const seen = (): void => { for (const wake of [...waiters]) wake() }
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        raw += chunk
        buffer += chunk
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const fields = { event: 'message', data: [] as string[] }
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim())
            else if (line.startsWith('event: ')) fields.event = line.slice(7)
            else if (line.startsWith('data: ')) fields.data.push(line.slice(6))
          }
          if (fields.data.length > 0) events.push({ event: fields.event, data: fields.data.join('\n') })
        }
        seen()
      })
      const finish = (): void => { done = true; seen() }
      res.on('end', finish)
      res.on('close', finish)
      res.on('error', finish)
      const until = <T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> => new Promise((resolve, reject) => {
        const timer = setTimeout(() => { waiters.delete(wake); reject(new Error(`timed out waiting for ${what}`)) }, timeoutMs)
        const wake = (): void => {
          const found = check()
          if (found === undefined) return
          clearTimeout(timer)
          waiters.delete(wake)
          resolve(found)
        }
        waiters.add(wake)
        wake()
      })
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: () => raw,
        events,
        comments,
        waitFor: (match, timeoutMs = 5000) => until(() => [...events, ...comments.map((c) => ({ event: 'comment', data: c }))].find(match), timeoutMs, 'an event'),
        ended: (timeoutMs = 5000) => until(() => done ? true : undefined, timeoutMs, 'the end of the stream').catch(() => false),
        close: () => { req.destroy() }
      })
    })
    req.on('error', reject)
  })
}
