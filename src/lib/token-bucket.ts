/**
 * A token bucket: `burst` tokens at most, `perSecond` more each second,
 * refilled continuously. The caller passes the time, so that each user keeps
 * its own clock (an injected one in tests).
 */
export class TokenBucket {
  private tokens: number
  private at: number
  private readonly perSecond: number
  private readonly burst: number

  constructor (perSecond: number, burst: number, now: number) {
    this.perSecond = perSecond
    this.burst = burst
    this.tokens = burst
    this.at = now
  }

  /** Takes a token if one is free. */
  take (now: number): boolean {
    this.refill(now)
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  /** Takes a token whether or not one is free: what was done already is paid for afterwards. */
  spend (now: number): void {
    this.refill(now)
    this.tokens -= 1
  }

  /** How long until a token is free: 0 when one is. */
  waitMs (now: number): number {
    this.refill(now)
    return this.tokens >= 1 ? 0 : Math.max(1, Math.ceil(((1 - this.tokens) / this.perSecond) * 1000))
  }

  private refill (now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.at) / 1000) * this.perSecond)
    this.at = now
  }
}
