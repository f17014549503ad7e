import { errors as undiciErrors, type Dispatcher } from 'undici'

/** Largest upstream body read; a larger one is a bad response, not a memory problem. */
export const MAX_RESPONSE_BYTES = 8 * 1024 * 1024

/**
 * What a cancelled exchange tells its transport. Nobody reads it (the reader
 * has settled), so one instance serves every cancel: building an error and
 * its stack was the largest part of cancelling a held poll, and a reconnect
 * storm or a shutdown cancels thousands.
 */
const CANCELLED = new undiciErrors.RequestAbortedError()

/**
 * One upstream exchange, as an undici dispatch handler: it reads the body,
 * no more than MAX_RESPONSE_BYTES of it (undici bounds HTTP/1.1 bodies
 * itself, not HTTP/2 ones), and ends in answered() or failed(), once,
 * unless cancelled first. It knows HTTP, not what the Chat API means by it.
 */
export abstract class BodyReader implements Dispatcher.DispatchHandler {
  protected readonly started = performance.now()
  private abortFn: ((err: Error) => void) | undefined
  private status = 0
  private retryAfter: string | undefined
  private date: string | undefined
  private chunks: Buffer[] | undefined
  private size = 0
  private settled = false
  private timer: NodeJS.Timeout | undefined

  /** Ends the exchange; nothing is told of it afterwards. */
  cancel (): void {
    if (this.settled) return
    this.settled = true
    clearTimeout(this.timer)
    this.abortFn?.(CANCELLED)
  }

  /**
   * Fails the exchange as unanswered in time after `ms`, on a timer of its
   * own: undici's timers over a second are coarse and may fire early, and a
   * request's deadline is a promise to the client.
   */
  expireAfter (ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined
      if (this.settled) return
      this.onError(new undiciErrors.HeadersTimeoutError())
      // Said as a timeout, so that the transport may check its connection.
      this.abortFn?.(new undiciErrors.HeadersTimeoutError())
    }, ms)
  }

  onConnect (abort: (err?: Error) => void): void {
    if (this.settled) abort(CANCELLED)
    else this.abortFn = abort
  }

  /** The request has been written; a poll's handler wants to know. */
  onRequestSent (): void {}

  onHeaders (status: number, rawHeaders: Buffer[] | string[] | null): boolean {
    this.status = status
    if (rawHeaders !== null) {
      for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
        const name = String(rawHeaders[i]).toLowerCase()
        if (name === 'date') this.date = String(rawHeaders[i + 1])
        else if (name === 'retry-after' && status >= 300) this.retryAfter = String(rawHeaders[i + 1])
      }
    }
    return true
  }

  onData (chunk: Buffer): boolean {
    this.size += chunk.length
    if (this.size > MAX_RESPONSE_BYTES) {
      this.chunks = undefined
      this.abortFn?.(new undiciErrors.ResponseExceededMaxSizeError())
      return false
    }
    ;(this.chunks ??= []).push(chunk)
    return true
  }

  onComplete (): void {
    if (this.settled) return
    this.settled = true
    clearTimeout(this.timer)
    const chunks = this.chunks ?? []
    this.chunks = undefined
    const text = chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks, this.size).toString('utf8')
    this.answered(this.status, text, this.retryAfter, this.date)
  }

  onError (err: Error): void {
    if (this.settled) return
    this.settled = true
    clearTimeout(this.timer)
    this.chunks = undefined
    // Over HTTP/2 undici reports the abort its own way: the size is the reason.
    this.failed(this.size > MAX_RESPONSE_BYTES ? new undiciErrors.ResponseExceededMaxSizeError() : err)
  }

  /** The whole answer: its status, its body as text, and its Retry-After (from 300 up only) and Date headers. */
  protected abstract answered (status: number, text: string, retryAfter: string | undefined, date: string | undefined): void
  protected abstract failed (err: unknown): void
}
