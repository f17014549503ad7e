/**
 * The upstream's clock. It is ours shifted by an offset, because a live Chat
 * API runs on another machine and its timestamps carry no zone. It never goes
 * back, so a client's log stays sorted by time and `ts` can be bisected even
 * if the system clock is stepped.
 */
export class UpstreamClock {
  readonly #offsetMs: number
  #last = Number.NEGATIVE_INFINITY

  constructor (offsetMs: number) {
    this.#offsetMs = offsetMs
  }

  /** Epoch milliseconds on the upstream's clock. */
  now (): number {
    this.#last = Math.max(this.#last, Date.now() + this.#offsetMs)
    return this.#last
  }
}

/** ISO-8601 with milliseconds and no zone, as the upstream writes it: `2026-11-24T12:32:13.262`. */
export function formatTimestamp (ms: number): string {
  return new Date(ms).toISOString().slice(0, -1)
}
