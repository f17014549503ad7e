/**
 * Time as the emulator keeps it: the upstream's clock, which stamps and
 * prints every event, and the timers of everything it does later.
 */
import type { ProfileFlags } from './profiles.js'

/** The zone of the 'zoned' profile: a server that writes Moscow time with its offset. */
const ZONE_OFFSET_MS = 3 * 3_600_000
const ZONE = '+03:00'

/**
 * The upstream's clock. It is ours shifted by an offset, because a live Chat
 * API runs on another machine and its timestamps carry no zone. It never goes
 * back, so that the times of a client's events only ever grow (a late-stamped
 * answer aside). It also prints times, as the upstream writes them: the
 * profiles 'whole-seconds', 'second-stamps' and 'zoned' change how.
 */
export class UpstreamClock {
  private readonly offsetMs: number
  private readonly wholeSeconds: boolean
  private readonly fraction: boolean
  private readonly zoned: boolean
  private last = Number.NEGATIVE_INFINITY

  constructor (offsetMs: number, flags: ProfileFlags) {
    this.offsetMs = offsetMs
    this.wholeSeconds = flags['whole-seconds']
    this.fraction = !flags['whole-seconds'] && !flags['second-stamps']
    this.zoned = flags.zoned
  }

  /** Epoch milliseconds on the upstream's clock; whole seconds for a server that keeps no more. */
  now (): number {
    this.last = Math.max(this.last, Date.now() + this.offsetMs)
    return this.wholeSeconds ? Math.floor(this.last / 1000) * 1000 : this.last
  }

  /** ISO-8601 as the upstream writes it; by default with milliseconds and no zone: `2026-11-24T12:32:13.262`. */
  format (ms: number): string {
    const local = new Date(this.zoned ? ms + ZONE_OFFSET_MS : ms).toISOString().slice(0, -1)
    const printed = this.fraction ? local : local.replace(/\.\d+$/, '')
    return this.zoned ? printed + ZONE : printed
  }
}

/**
 * Timers owned by one emulator: async answers, the simulated agent, bot
 * timeouts, webhook retries. They are unref'd so that they never keep a
 * process alive on their own, and close() clears them all at once.
 */
export class TimerSet {
  private readonly timers = new Set<NodeJS.Timeout>()
  private closed = false

  /** Runs `fn` after `ms`; does nothing once closed. */
  after (ms: number, fn: () => void): NodeJS.Timeout | undefined {
    if (this.closed) return undefined
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      fn()
    }, ms)
    timer.unref()
    this.timers.add(timer)
    return timer
  }

  cancel (timer: NodeJS.Timeout | undefined): void {
    if (timer === undefined) return
    clearTimeout(timer)
    this.timers.delete(timer)
  }

  close (): void {
    this.closed = true
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
  }
}
