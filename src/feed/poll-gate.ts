import { TokenBucket } from '../lib/token-bucket.js'

/** One poll waiting for its turn to start. */
export interface GateWaiter { admitted: () => void }

/**
 * A token bucket for the start of new upstream polls: after a deploy or an
 * ingress reload, thousands of sockets reconnect at once, and without a gate
 * each would open a new upstream long poll in the same second. Waiters are
 * served in order; a waiter whose poll is stopped leaves the queue.
 */
export class PollGate {
  private readonly bucket: TokenBucket
  private readonly queue: GateWaiter[] = []
  private timer: NodeJS.Timeout | undefined
  private readonly now: () => number

  constructor (perSecond: number, burst: number, now: () => number = Date.now) {
    this.bucket = new TokenBucket(perSecond, burst, now())
    this.now = now
  }

  get waiting (): number { return this.queue.length }

  /** Queues a waiter; its admitted() is called when its turn comes (at once when a token is free). */
  enter (w: GateWaiter): void {
    if (this.queue.length === 0 && this.bucket.take(this.now())) {
      w.admitted()
      return
    }
    this.queue.push(w)
    this.schedule()
  }

  /** A waiter that no longer wants its turn (its poll was stopped). */
  leave (w: GateWaiter): void {
    const i = this.queue.indexOf(w)
    if (i >= 0) this.queue.splice(i, 1)
  }

  close (): void {
    clearTimeout(this.timer)
    for (const w of this.queue.splice(0)) w.admitted()
  }

  private schedule (): void {
    if (this.timer !== undefined) return
    const wait = Math.max(1, this.bucket.waitMs(this.now()))
    this.timer = setTimeout(() => {
      this.timer = undefined
      while (this.queue.length > 0 && this.bucket.take(this.now())) {
        ;(this.queue.shift() as GateWaiter).admitted()
      }
      if (this.queue.length > 0) this.schedule()
    }, wait)
    this.timer.unref()
  }
}
