import type { WebSocketLike } from './socket-like.js'

/** The part of `fetch` the HTTP transport uses; the global one fits (browsers, Node 18+). */
export type FetchLike = (url: string, init: {
  method?: string
  headers?: Record<string, string>
  body?: string
  signal?: AbortSignal
  cache?: 'no-store'
}) => Promise<{
  ok: boolean
  status: number
  headers: { get: (name: string) => string | null }
  body: ReadableStream<Uint8Array> | null
  text: () => Promise<string>
}>

const CONNECTING = 0
const OPEN = 1
const CLOSED = 3
/** What a WebSocket reports for a connection that ended without a close frame. */
const ABNORMAL = 1006

/**
 * The bridge's HTTP transport, shaped as a WebSocket for the connection: it
 * opens `GET /v1/sse` (Server-Sent Events), is open once the stream names its
 * key, hands each SSE message to `onmessage` as a frame, and sends frames by
 * `POST /v1/sse`, one POST at a time, carrying every frame queued meanwhile
 * in order. The stream's `close` event is the close code. A POST the bridge
 * refuses, or a stream that ends without a close, ends it as 1006 would.
 */
export class HttpStreamSocket implements WebSocketLike {
  readyState = CONNECTING
  onopen: ((event: object) => void) | null = null
  onmessage: ((event: { data: string }) => void) | null = null
  onclose: ((event: { code: number, reason: string }) => void) | null = null
  onerror: ((event: { message: string }) => void) | null = null

  private readonly url: string
  private readonly fetch: FetchLike
  private readonly maxBatchBytes: number
  private readonly abort = new AbortController()
  private key: string | undefined
  private queue: string[] = []
  private posting = false

  /** `url` is the stream's (`http(s)://host/v1/sse`, with `?channel=` where needed); frames are posted to it as well. */
  constructor (url: string, fetch: FetchLike, maxBatchBytes: number) {
    this.url = url
    this.fetch = fetch
    this.maxBatchBytes = maxBatchBytes
    void this.read()
  }

  send (data: string): void {
    if (this.readyState !== OPEN) return
    this.queue.push(data)
    void this.flush()
  }

  close (code = 1000, reason = ''): void {
    // Ending the request is what tells the bridge; the close event comes later, as a WebSocket's does.
    if (this.readyState === CLOSED) return
    this.readyState = CLOSED
    this.abort.abort()
    setTimeout(() => { this.onclose?.({ code, reason }) }, 0)
  }

  private async read (): Promise<void> {
    let res
    try {
      res = await this.fetch(this.url, { headers: { accept: 'text/event-stream' }, cache: 'no-store', signal: this.abort.signal })
    } catch (err) {
      this.fail(`cannot open the event stream: ${messageOf(err)}`)
      return
    }
    const type = res.headers.get('content-type') ?? ''
    if (!res.ok || res.body === null || !type.startsWith('text/event-stream')) {
      res.body?.cancel().catch(() => {})
      this.fail(`the event stream was answered with HTTP ${res.status}${res.ok ? ` (${type || 'no content type'})` : ''}`)
      return
    }
    const reader = res.body.getReader()
    const decoder = new TextDecoder()
    let buffer = ''
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n')
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          this.onBlock(block)
          if (this.readyState === CLOSED) return
        }
      }
    } catch (err) {
      this.fail(`the event stream broke: ${messageOf(err)}`)
      return
    }
    this.fail('the event stream ended without a close')
  }

  /** One SSE event: its `event` name and `data` lines; comments (heartbeats), ids and retry hints are not needed here. */
  private onBlock (block: string): void {
    let name = 'message'
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? '' : line.slice(line[colon + 1] === ' ' ? colon + 2 : colon + 1)
      if (field === 'event') name = value
      else if (field === 'data') data.push(value)
    }
    if (data.length === 0) return
    const text = data.join('\n')
    if (name === 'message') {
      if (this.readyState === OPEN) this.onmessage?.({ data: text })
      return
    }
    const fields = parse(text)
    if (name === 'stream' && this.readyState === CONNECTING && typeof fields.key === 'string') {
      this.key = fields.key
      this.readyState = OPEN
      this.onopen?.({})
    } else if (name === 'close') {
      this.finish(typeof fields.code === 'number' ? fields.code : ABNORMAL, typeof fields.reason === 'string' ? fields.reason : '')
    }
  }

  /** Posts what is queued, a batch at a time, in order; one POST in flight at most, so frames arrive as they were sent. */
  private async flush (): Promise<void> {
    if (this.posting) return
    this.posting = true
    while (this.queue.length > 0 && this.readyState === OPEN) {
      const batch = [this.key as string]
      let bytes = 0
      while (this.queue.length > 0 && (batch.length === 1 || bytes + (this.queue[0] as string).length <= this.maxBatchBytes)) {
        const frame = this.queue.shift() as string
        batch.push(frame)
        bytes += frame.length + 1
      }
      try {
        // text/plain: a "simple" request, which a browser sends across origins without a preflight.
        const res = await this.fetch(this.url, { method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: batch.join('\n') })
        // Read to the end, so that the connection is free for the next request (Node keeps it otherwise).
        const text = await res.text().catch(() => '')
        if (!res.ok) {
          this.fail(`the bridge refused the frames (HTTP ${res.status}${errorOf(text)})`)
          break
        }
      } catch (err) {
        this.fail(`could not post frames: ${messageOf(err)}`)
        break
      }
    }
    this.posting = false
  }

  private fail (reason: string): void {
    if (this.readyState === CLOSED) return
    this.onerror?.({ message: reason })
    this.finish(ABNORMAL, reason)
  }

  private finish (code: number, reason: string): void {
    if (this.readyState === CLOSED) return
    this.readyState = CLOSED
    this.queue = []
    this.abort.abort()
    this.onclose?.({ code, reason })
  }
}

/** The transport's URL for a socket URL: the same host, http(s), /v1/sse in place of /v1/ws, the same query. */
export function httpStreamUrl (socketUrl: string): string {
  const url = new URL(socketUrl)
  url.protocol = url.protocol === 'wss:' ? 'https:' : url.protocol === 'ws:' ? 'http:' : url.protocol
  url.pathname = url.pathname.replace(/\/ws\/?$/, '/sse')
  return url.toString()
}

function parse (text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text)
    return typeof v === 'object' && v !== null ? v as Record<string, unknown> : {}
  } catch {
    return {}
  }
}

function errorOf (body: string): string {
  const e = parse(body).error
  return typeof e === 'string' ? `, ${e}` : ''
}

function messageOf (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
