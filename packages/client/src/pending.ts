import { BridgeRequestError, ClientErrorCode } from './client-errors.js'
import type { Clock } from './clock.js'
import type { ResultFrame } from './frames.js'

interface Pending {
  frame: string
  resolve: (result: unknown) => void
  reject: (err: BridgeRequestError) => void
  timer: unknown
}

export interface RequestLimits {
  /** How long a request waits for its result, reconnects included. */
  timeoutMs: number
  /** The largest frame a request may make. */
  maxFrameBytes: number
}

/**
 * Requests waiting for their result. Each keeps its frame, so that after a
 * reconnect it is sent again with the same id: the bridge answers a known id
 * from its result cache (or waits for the first answer), so a resend neither
 * loses nor doubles a message. Insertion order is send order.
 */
export class PendingRequests {
  private readonly byId = new Map<string, Pending>()
  private readonly clock: Clock
  private readonly limits: RequestLimits
  private readonly idPrefix = randomId()
  private seq = 0

  constructor (clock: Clock, limits: RequestLimits) {
    this.clock = clock
    this.limits = limits
  }

  /**
   * A new request of `type`: its frame, under a fresh id, and the promise of
   * its result, which rejects with TIMEOUT when none comes in time. Throws
   * TOO_LARGE for a frame the bridge would close the socket over (1009).
   */
  add (type: string, fields: Record<string, unknown>): { frame: string, result: Promise<unknown> } {
    const id = `${this.idPrefix}-${++this.seq}`
    const frame = JSON.stringify({ ...fields, type, id })
    const bytes = new TextEncoder().encode(frame).length
    if (bytes > this.limits.maxFrameBytes) {
      throw new BridgeRequestError('TOO_LARGE', `the ${type} frame has ${bytes} bytes, more than the ${this.limits.maxFrameBytes} allowed`)
    }
    const { timeoutMs } = this.limits
    const result = new Promise<unknown>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.byId.delete(id)
        reject(new BridgeRequestError(ClientErrorCode.TIMEOUT, `no result within ${timeoutMs} ms`))
      }, timeoutMs)
      this.byId.set(id, { frame, resolve, reject, timer })
    })
    return { frame, result }
  }

  /** The frames to send on a new connection, oldest first. */
  frames (): string[] {
    return [...this.byId.values()].map((p) => p.frame)
  }

  /**
   * Settles the request a result answers. A SHUTTING_DOWN failure leaves it
   * waiting: the bridge closes the socket next, and the resend after the
   * reconnect tries again. Returns false when no request has that id (one
   * that timed out, say).
   */
  settle (frame: ResultFrame): boolean {
    const p = this.byId.get(frame.id)
    if (p === undefined) return false
    if (!frame.ok && frame.error.code === 'SHUTTING_DOWN') return true
    this.byId.delete(frame.id)
    this.clock.clearTimeout(p.timer)
    if (frame.ok) p.resolve(frame.result)
    else p.reject(BridgeRequestError.fromResult(frame.error))
    return true
  }

  /** Rejects one request, for an `error` frame that names its id. */
  fail (id: string, err: BridgeRequestError): boolean {
    const p = this.byId.get(id)
    if (p === undefined) return false
    this.byId.delete(id)
    this.clock.clearTimeout(p.timer)
    p.reject(err)
    return true
  }

  failAll (err: BridgeRequestError): void {
    for (const id of [...this.byId.keys()]) this.fail(id, err)
  }
}

/** A prefix that makes request ids unique across tabs and page loads of one client, as the bridge's result cache needs. */
function randomId (): string {
  // Web Crypto: in every browser, and global in Node 20.
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(9))
  return Array.from(bytes, (b) => b.toString(36).padStart(2, '0')).join('')
}
