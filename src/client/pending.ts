import { BridgeRequestError, ClientErrorCode } from './client-errors.js'
import type { ResultFrame } from './frames.js'

interface Pending {
  frame: string
  resolve: (result: unknown) => void
  reject: (err: BridgeRequestError) => void
  timer: ReturnType<typeof setTimeout>
}

/**
 * Requests waiting for their result. Each keeps its frame, so that after a
 * reconnect it is sent again with the same id: the bridge answers a known id
 * from its result cache (or waits for the first answer), so a resend neither
 * loses nor doubles a message. Insertion order is send order.
 */
export class PendingRequests {
  private readonly byId = new Map<string, Pending>()

  add (id: string, frame: string, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.byId.delete(id)
        reject(new BridgeRequestError(ClientErrorCode.TIMEOUT, `no result within ${timeoutMs} ms`))
      }, timeoutMs)
      this.byId.set(id, { frame, resolve, reject, timer })
    })
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
    clearTimeout(p.timer)
    if (frame.ok) p.resolve(frame.result)
    else p.reject(BridgeRequestError.fromResult(frame.error))
    return true
  }

  /** Rejects one request, for an `error` frame that names its id. */
  fail (id: string, err: BridgeRequestError): boolean {
    const p = this.byId.get(id)
    if (p === undefined) return false
    this.byId.delete(id)
    clearTimeout(p.timer)
    p.reject(err)
    return true
  }

  failAll (err: BridgeRequestError): void {
    for (const id of [...this.byId.keys()]) this.fail(id, err)
  }
}
