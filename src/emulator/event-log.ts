import type { UpstreamEvent } from './types.js'

export interface LogEntry {
  /** Absolute position in the client's log; it never changes, even when old entries are trimmed. */
  position: number
  /** Upstream epoch ms of `item.event.timestamp`. */
  at: number
  item: UpstreamEvent
}

/** Oldest entries are dropped past this, so a long benchmark cannot grow a client without bound. */
const DEFAULT_CAP = 10_000

/**
 * The append-only event log of one client. Entries are sorted by time because
 * the upstream clock never goes back, which lets `ts` be found by bisection.
 */
export class EventLog {
  readonly #entries: LogEntry[] = []
  readonly #cap: number
  /** Position of #entries[0]. */
  #base = 0

  constructor (cap = DEFAULT_CAP) {
    this.#cap = cap
  }

  /** The position the next appended entry will take. */
  get end (): number {
    return this.#base + this.#entries.length
  }

  append (at: number, item: UpstreamEvent): LogEntry {
    const entry = { position: this.end, at, item }
    this.#entries.push(entry)
    if (this.#entries.length > this.#cap) {
      // Trim a tenth at a time so that the splice cost is paid rarely.
      const drop = Math.ceil(this.#cap / 10)
      this.#entries.splice(0, drop)
      this.#base += drop
    }
    return entry
  }

  /** The first position whose time is at or after `ms` (`end` if none). */
  positionAt (ms: number): number {
    let lo = 0
    let hi = this.#entries.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.#entries[mid] as LogEntry).at < ms) lo = mid + 1
      else hi = mid
    }
    return this.#base + lo
  }

  /** Entries from `position` on, oldest first. */
  * from (position: number): Generator<LogEntry> {
    for (let i = Math.max(0, position - this.#base); i < this.#entries.length; i++) {
      yield this.#entries[i] as LogEntry
    }
  }
}
