/** What the schedule keeps on each item: the moment it is due, 0 when it is not scheduled. */
export interface Expiring {
  expiresAt: number
}

/**
 * The longest the one timer sleeps: the due times are wall-clock times
 * (a JWT's `exp`), so a clock that is stepped is noticed within a minute;
 * and a timer may wait at most 2^31-1 ms, less than a 30-day ticket lives.
 */
const MAX_WAIT_MS = 60_000

/** Buckets are seconds: a JWT's `exp` and a ticket's expiry are whole seconds, so every item is due exactly at its bucket. */
const BUCKET_MS = 1000

/**
 * When each of many items expires (the credentials of every socket of the
 * process), on one timer. Items are kept in a bucket per second, and a heap
 * of those seconds says which bucket is next: setting, moving or dropping
 * an item costs a Set operation (and a heap push for a new second), and ten
 * thousand sockets cost ten thousand Set entries, not ten thousand timers.
 * An item is due at or after its time, never before it.
 */
export class ExpirySchedule<T extends Expiring> {
  private readonly buckets = new Map<number, Set<T>>()
  /** The seconds of the buckets, as a binary min-heap; a second whose bucket emptied stays until it is popped or compacted. */
  private readonly heap: number[] = []
  private readonly onExpire: (item: T) => void
  private readonly now: () => number
  private timer: NodeJS.Timeout | undefined
  /** The moment the timer is armed for; Infinity when it is not. */
  private armedFor = Number.POSITIVE_INFINITY
  private stopped = false

  constructor (onExpire: (item: T) => void, now: () => number = Date.now) {
    this.onExpire = onExpire
    this.now = now
  }

  /** Items scheduled now. */
  get size (): number {
    let n = 0
    for (const b of this.buckets.values()) n += b.size
    return n
  }

  /** Schedules `item` at `atMs` (epoch ms), in place of any earlier time it had. */
  set (item: T, atMs: number): void {
    if (this.stopped) return
    this.delete(item)
    const key = Math.ceil(atMs / BUCKET_MS) * BUCKET_MS
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      this.compact()
      bucket = new Set()
      this.buckets.set(key, bucket)
      this.push(key)
    }
    bucket.add(item)
    item.expiresAt = key
    if (key < this.armedFor) this.arm()
  }

  delete (item: T): void {
    const key = item.expiresAt
    if (key === 0) return
    item.expiresAt = 0
    // A scheduled item is in the bucket of its time: the two change together.
    const bucket = this.buckets.get(key) as Set<T>
    bucket.delete(item)
    if (bucket.size === 0) this.buckets.delete(key)
  }

  /** Ends the timer for good (the process shuts down); nothing is due after this. */
  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    this.armedFor = Number.POSITIVE_INFINITY
  }

  /** Runs what is due and arms the timer for the next bucket. */
  private tick (): void {
    this.timer = undefined
    this.armedFor = Number.POSITIVE_INFINITY
    const now = this.now()
    for (let key = this.heap[0]; key !== undefined && key <= now; key = this.heap[0]) {
      this.pop()
      const bucket = this.buckets.get(key)
      if (bucket === undefined) continue
      this.buckets.delete(key)
      for (const item of bucket) {
        item.expiresAt = 0
        this.onExpire(item)
      }
    }
    this.arm()
  }

  private arm (): void {
    if (this.stopped) return
    const next = this.heap[0]
    clearTimeout(this.timer)
    this.timer = undefined
    this.armedFor = Number.POSITIVE_INFINITY
    if (next === undefined) return
    const wait = Math.min(Math.max(0, next - this.now()), MAX_WAIT_MS)
    this.timer = setTimeout(() => { this.tick() }, wait)
    // Only keeps watch: the process may end with sockets scheduled.
    this.timer.unref()
    this.armedFor = next
  }

  /** Seconds whose bucket emptied are dropped once they are half the heap, so that churn does not grow it; amortised, it costs O(1) a push. */
  private compact (): void {
    if (this.heap.length <= 2 * this.buckets.size + 16) return
    this.heap.length = 0
    for (const key of this.buckets.keys()) this.push(key)
  }

  private push (key: number): void {
    const h = this.heap
    let i = h.push(key) - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if ((h[parent] as number) <= key) break
      h[i] = h[parent] as number
      i = parent
    }
    h[i] = key
  }

  private pop (): void {
    const h = this.heap
    const last = h.pop() as number
    if (h.length === 0) return
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= h.length) break
      const r = l + 1
      const child = r < h.length && (h[r] as number) < (h[l] as number) ? r : l
      if ((h[child] as number) >= last) break
      h[i] = h[child] as number
      i = child
    }
    h[i] = last
  }
}
