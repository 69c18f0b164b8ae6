/**
 * One request written verbatim on a TCP socket, for shapes an HTTP client will not send (two Host
 * headers, absolute-form targets, odd `Expect` values). Reads until the gateway closes the connection, it
 * has a whole response with Content-Length, or the time is up.
 */
import net from 'node:net'

export interface RawAnswer {
  /** Everything received, as latin1 text. */
  text: string
  status: number
  /** The body of the last response, parsed, or undefined. */
  json: any
  /** True when the gateway closed the connection. */
  closed: boolean
}

export function rawExchange (base: string, request: string, timeoutMs = 10_000): Promise<RawAnswer> {
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname)
    let text = ''
    let closed = false
    const finish = (): void => {
      clearTimeout(timer)
      socket.destroy()
      const finals = [...text.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].filter((m) => m[1] !== '100')
      const status = Number(finals.at(-1)?.[1] ?? 0)
      const body = text.slice(text.lastIndexOf('\r\n\r\n') + 4)
      let json: unknown
      try { json = JSON.parse(body) } catch { json = undefined }
      resolve({ text, status, json, closed })
    }
    const timer = setTimeout(finish, timeoutMs)
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1')
      const head = text.lastIndexOf('\r\n\r\n')
      const length = /content-length: (\d+)\r\n(?![\s\S]*HTTP\/1\.1)/i.exec(text)
      if (head !== -1 && length !== null && text.length - head - 4 >= Number(length[1])) setTimeout(finish, 50)
    })
    socket.on('end', () => { closed = true; finish() })
    socket.on('error', (err) => { clearTimeout(timer); reject(err) })
    socket.write(request)
  })
}
