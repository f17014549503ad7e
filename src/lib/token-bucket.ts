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

  /** Whether the bucket holds all the tokens it can: it would be the same made anew. */
  isFull (now: number): boolean {
    this.refill(now)
    return this.tokens >= this.burst
  }

  private refill (now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.at) / 1000) * this.perSecond)
    this.at = now
  }
}

/**
 * A token bucket per key (a client, an address), made on first use. Buckets
 * that are full again are the same as new ones, so they are dropped now and
 * then: the map stays about as large as the keys that spent tokens lately.
 */
export class TokenBuckets {
  private readonly perSecond: number
  private readonly burst: number
  private readonly buckets = new Map<string, TokenBucket>()
  private sweepAt = 64

  constructor (perSecond: number, burst: number) {
    this.perSecond = perSecond
    this.burst = burst
  }

  /** Takes a token from the key's bucket if one is free. */
  take (key: string, now: number): boolean {
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      if (this.buckets.size >= this.sweepAt) {
        for (const [k, b] of this.buckets) if (b.isFull(now)) this.buckets.delete(k)
        this.sweepAt = Math.max(64, this.buckets.size * 2)
      }
      bucket = new TokenBucket(this.perSecond, this.burst, now)
      this.buckets.set(key, bucket)
    }
    return bucket.take(now)
  }
}
