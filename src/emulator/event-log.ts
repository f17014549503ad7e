import type { UpstreamEvent } from './types.js'

export interface LogEntry {
  /** Absolute position in the client's log; it never changes, even when old entries are trimmed. */
  position: number
  /** Upstream epoch ms of the event's timestamp. */
  at: number
  /** The latest `at` of this entry and every one before it, so that `ts` can be bisected on it. */
  reach: number
  item: UpstreamEvent
}

/** Oldest entries are dropped past this, so a long benchmark cannot grow a client without bound. */
const DEFAULT_CAP = 10_000

/**
 * The append-only event log of one client, in the order of storage. Entries
 * are sorted by time too, because the upstream clock never goes back, unless
 * an event is stored late with an earlier stamp ('late-stamps'). So `ts` is
 * bisected on `reach`, which always grows: before the position found no entry
 * can match, and from it on the caller still checks each entry's own time.
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
    const last = this.#entries.at(-1)
    const entry = { position: this.end, at, reach: last === undefined ? at : Math.max(last.reach, at), item }
    this.#entries.push(entry)
    if (this.#entries.length > this.#cap) {
      // Trim a tenth at a time so that the splice cost is paid rarely.
      const drop = Math.ceil(this.#cap / 10)
      this.#entries.splice(0, drop)
      this.#base += drop
    }
    return entry
  }

  /**
   * The first position from which an entry may be at or after `ms` (after it,
   * if `exclusive`); `end` if none. In a sorted log, the first such entry.
   */
  positionAt (ms: number, exclusive = false): number {
    let lo = 0
    let hi = this.#entries.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const reach = (this.#entries[mid] as LogEntry).reach
      if (exclusive ? reach <= ms : reach < ms) lo = mid + 1
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
