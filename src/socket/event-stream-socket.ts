import { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'
import { CloseCode, closeReason } from './errors.js'

const TOO_LARGE = CloseCode.TOO_LARGE

/** readyState values, as a WebSocket's. */
const OPEN = 1
const CLOSED = 3
/** The code of a connection that ended without a close, as a WebSocket's 1006. */
const ABNORMAL = 1006

/** How an event frame starts (src/feed/feed.ts writes them): its cursor becomes the SSE event's id. */
const EVENT_PREFIX = '{"type":"event","cursor":"'
const WELCOME_PREFIX = '{"type":"welcome",'
const WELCOME_CURSOR = /"cursor":"([^"]+)"/

/**
 * One Server-Sent Events response, seen by a Session as a WebSocket: frames
 * go out as SSE messages, frames come in from the POSTs of the stream's key
 * (`receive`), and a close is an SSE `close` event with the code, then the
 * end of the response. An event frame's cursor is its SSE `id`, so a client
 * that reconnects with `Last-Event-ID` resumes where it was.
 */
export class EventStreamSocket extends EventEmitter {
  readonly OPEN = OPEN
  readonly CLOSED = CLOSED
  readyState = OPEN
  /** The stream's key: what its POSTs name it by. Known only to its client, as a socket is. */
  readonly key: string
  /** The `Last-Event-ID` of the request: where a client that does not say `resume` in its hello resumes from. */
  readonly resumeHint: string | undefined
  private readonly res: ServerResponse
  private readonly maxFrameBytes: number

  constructor (res: ServerResponse, key: string, maxFrameBytes: number, resumeHint?: string) {
    super()
    this.res = res
    this.key = key
    this.maxFrameBytes = maxFrameBytes
    this.resumeHint = resumeHint
    res.on('close', () => { this.ended(ABNORMAL) })
    res.on('error', (err: Error) => { this.emit('error', err) })
  }

  get bufferedAmount (): number { return this.res.writableLength }

  /** Writes SSE text as it is, while the stream is open. */
  private write (text: string, cb?: (err?: Error | null) => void): void {
    if (this.readyState !== OPEN) return
    this.res.write(text, cb)
  }

  send (frame: string, cb?: (err?: Error) => void): void {
    let id = ''
    if (frame.startsWith(EVENT_PREFIX)) {
      const end = frame.indexOf('"', EVENT_PREFIX.length)
      if (end > 0) id = `id: ${frame.slice(EVENT_PREFIX.length, end)}\n`
    } else if (frame.startsWith(WELCOME_PREFIX)) {
      // A welcome that did not resume brings the cursor its stream starts from: a reconnect resumes from there.
      const cursor = WELCOME_CURSOR.exec(frame)?.[1]
      if (cursor !== undefined) id = `id: ${cursor}\n`
    }
    // JSON.stringify escapes line breaks, so a frame is always one data line.
    this.write(`${id}data: ${frame}\n\n`, cb === undefined ? undefined : (err) => { cb(err ?? undefined) })
  }

  /** A comment line: keeps proxies from closing an idle response. Only the client's pong frame proves it reads. */
  ping (): void { this.write(':\n\n') }

  /** The frames of one POST, one per line; blank lines are skipped. */
  receive (body: string): void {
    for (const line of body.split('\n')) {
      if (this.readyState !== OPEN) return
      const frame = line.trim()
      if (frame === '') continue
      // As a WebSocket frame past maxPayload is.
      if (Buffer.byteLength(frame) > this.maxFrameBytes) {
        this.close(TOO_LARGE, closeReason[TOO_LARGE])
        return
      }
      this.emit('message', frame, false)
    }
  }

  close (code: number, reason: string): void {
    if (this.readyState !== OPEN) return
    this.write(`event: close\ndata: ${JSON.stringify({ code, reason })}\n\n`)
    this.res.end()
    this.ended(code)
  }

  terminate (): void {
    this.res.destroy()
    this.ended(ABNORMAL)
  }

  private ended (code: number): void {
    if (this.readyState === CLOSED) return
    this.readyState = CLOSED
    this.emit('close', code)
  }
}
