import { CloseCode } from './errors.js'
import type { Session } from './session.js'

/**
 * Every open socket of this process. One timer beats the heart of all of
 * them, rather than a timer per socket.
 */
export class Sessions extends Set<Session> {
  private readonly timer: NodeJS.Timeout

  constructor (heartbeatMs: number) {
    super()
    this.timer = setInterval(() => { for (const s of this) s.heartbeat() }, heartbeatMs)
    this.timer.unref()
  }

  rejectChannel (channel: string): void {
    for (const s of this) if (s.channel === channel) s.close(CloseCode.UPSTREAM_REJECTED_CHANNEL)
  }

  /** Closes every socket with 1012 and waits, at most `graceMs`, for the close handshakes; stragglers are cut. */
  async closeAll (graceMs: number): Promise<void> {
    clearInterval(this.timer)
    const closing = [...this].map(async (s) => await s.closeAndWait(CloseCode.RESTART, graceMs))
    await Promise.all(closing)
  }
}
