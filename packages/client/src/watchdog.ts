import type { Clock } from './clock.js'

/**
 * The open socket's proof of life. The bridge sends a frame (a ping at the
 * least) every heartbeat, so two heartbeats without any frame mean the
 * socket is dead, even one the operating system still calls open (a mobile
 * network that dropped the route, a NAT that forgot it). When liveness is in
 * doubt (the app was frozen in the background, the network changed) the
 * client pings, and then one heartbeat is enough.
 */
export class Watchdog {
  private readonly clock: Clock
  private readonly dead: (reason: string) => void
  private timer: unknown
  /** When the timer fires, by the clock: a probe may bring it nearer, never push it back. */
  private deadline = Number.POSITIVE_INFINITY

  constructor (clock: Clock, dead: (reason: string) => void) {
    this.clock = clock
    this.dead = dead
  }

  /** A frame came on the open socket: it lives, and has two heartbeats until the next. */
  fed (heartbeatMs: number | undefined): void {
    this.stop()
    this.set(heartbeatMs, 2, 'no frame from the bridge for two heartbeats')
  }

  /** A ping was just sent: its pong (or any frame) must come within one heartbeat. */
  probe (heartbeatMs: number | undefined): void {
    this.set(heartbeatMs, 1, 'no answer to a ping within a heartbeat')
  }

  stop (): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.deadline = Number.POSITIVE_INFINITY
  }

  private set (heartbeatMs: number | undefined, beats: number, reason: string): void {
    if (typeof heartbeatMs !== 'number' || heartbeatMs <= 0) return
    const deadline = this.clock.now() + beats * heartbeatMs
    if (deadline >= this.deadline) return
    this.stop()
    this.deadline = deadline
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined
      this.deadline = Number.POSITIVE_INFINITY
      this.dead(reason)
    }, beats * heartbeatMs)
  }
}
