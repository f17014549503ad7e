import type { Log } from '../lib/log.js'

/**
 * During an upstream outage every poll of a channel fails the same way; one
 * line per failure, or per poller, would bury the log. A streak is logged
 * when it starts (or its kind changes), then again at most every `everyMs`
 * with the count so far, and once more when a poll succeeds again.
 */
export class StreakLog {
  private readonly log: Log
  private readonly everyMs: number
  private readonly now: () => number
  private signature: string | undefined
  private count = 0
  private loggedAt = 0

  constructor (log: Log, everyMs = 30_000, now: () => number = Date.now) {
    this.log = log
    this.everyMs = everyMs
    this.now = now
  }

  failure (signature: string, message: string, fields: object): void {
    const now = this.now()
    if (signature !== this.signature) {
      this.signature = signature
      this.count = 1
      this.loggedAt = now
      this.log.warn({ ...fields, failures: 1 }, message)
      return
    }
    this.count++
    if (now - this.loggedAt >= this.everyMs) {
      this.loggedAt = now
      this.log.warn({ ...fields, failures: this.count }, `${message} (still failing)`)
    }
  }

  success (): void {
    if (this.signature === undefined) return
    this.log.info({ failures: this.count }, 'upstream polls recovered')
    this.signature = undefined
    this.count = 0
  }
}
