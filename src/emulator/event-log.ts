/**
 * Each client's event log, and how /events reads it: from a time (`ts`) or
 * from a server-side cursor, scoped by `cid`, at most MAX_EVENTS at a time.
 */
import { NO_PROFILE, type ProfileFlags } from './profiles.js'

/** One element of `{ events: [...] }`, exactly as it goes on the wire. */
export interface UpstreamEvent {
  type: string
  /** Only with the 'outer-times' profile: the event's time, which is then null inside `event`. */
  timestamp?: string | number
  event: Record<string, unknown>
}

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

/** The documented cap of one /events response. */
export const MAX_EVENTS = 250

/**
 * The append-only event log of one client, in the order of storage. Entries
 * are sorted by time too, because the upstream clock never goes back, unless
 * an event is stored late with an earlier stamp ('late-stamps'). So `ts` is
 * bisected on `reach`, which always grows: before the position found no entry
 * can match, and from it on the caller still checks each entry's own time.
 */
export class EventLog {
  private readonly entries: LogEntry[] = []
  private readonly cap: number
  /** Position of entries[0]. */
  private base = 0

  constructor (cap = DEFAULT_CAP) {
    this.cap = cap
  }

  /** The position the next appended entry will take. */
  get end (): number {
    return this.base + this.entries.length
  }

  append (at: number, item: UpstreamEvent): LogEntry {
    const last = this.entries.at(-1)
    const entry = { position: this.end, at, reach: last === undefined ? at : Math.max(last.reach, at), item }
    this.entries.push(entry)
    if (this.entries.length > this.cap) {
      // Trim a tenth at a time so that the splice cost is paid rarely.
      const drop = Math.ceil(this.cap / 10)
      this.entries.splice(0, drop)
      this.base += drop
    }
    return entry
  }

  /**
   * The first position from which an entry may be at or after `ms` (after it,
   * if `exclusive`); `end` if none. In a sorted log, the first such entry.
   */
  positionAt (ms: number, exclusive = false): number {
    let lo = 0
    let hi = this.entries.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const reach = (this.entries[mid] as LogEntry).reach
      if (exclusive ? reach <= ms : reach < ms) lo = mid + 1
      else hi = mid
    }
    return this.base + lo
  }

  /** Entries from `position` on, oldest first. */
  * from (position: number): Generator<LogEntry> {
    for (let i = Math.max(0, position - this.base); i < this.entries.length; i++) {
      yield this.entries[i] as LogEntry
    }
  }
}

export interface EventsQuery {
  cid: string | undefined
  /** Epoch ms, inclusive ('exclusive-ts': exclusive); undefined reads from the key's server-side cursor. */
  ts: number | undefined
  /** false keeps agent replies only. */
  all: boolean
}

export interface EventsMatch {
  events: UpstreamEvent[]
  /** Where the key's cursor goes if this match is answered. */
  next: number
}

/**
 * Read positions of one client: where each cid was first seen (a cid only
 * sees what came after), and the server-side cursor of each (client, cid) key.
 * Polls without a cid use the key ''. With 'unscoped-cid' a cid hides
 * nothing and every cid shares the client's one cursor.
 */
export class ReadCursors {
  private readonly cidStart = new Map<string, number>()
  private readonly positions = new Map<string, number>()
  private readonly scoped: boolean

  constructor (flags: ProfileFlags = NO_PROFILE) {
    this.scoped = !flags['unscoped-cid']
  }

  /** Records the first sight of a key: a key never seen starts at the end of the log. */
  see (cid: string | undefined, end: number): void {
    const key = this.key(cid)
    if (this.scoped && cid !== undefined && !this.cidStart.has(cid)) this.cidStart.set(cid, end)
    if (!this.positions.has(key)) this.positions.set(key, end)
  }

  move (cid: string | undefined, next: number): void {
    this.positions.set(this.key(cid), next)
  }

  next (cid: string | undefined, end: number): number {
    return this.positions.get(this.key(cid)) ?? end
  }

  start (cid: string | undefined): number {
    return cid === undefined ? 0 : this.cidStart.get(cid) ?? 0
  }

  private key (cid: string | undefined): string {
    return this.scoped ? cid ?? '' : ''
  }
}

/**
 * What a /events request would return now. `scanFrom` lets a held poll skip
 * the entries it already found not to match, so waking it costs only the new
 * entries. Entries come in storage order; with `ts`, each one's own time is
 * checked, since a late-stamped entry may sit after later ones.
 */
export function matchEvents (log: EventLog, cursors: ReadCursors, query: EventsQuery, scanFrom = 0, flags: ProfileFlags = NO_PROFILE): EventsMatch {
  const { ts } = query
  const exclusive = flags['exclusive-ts']
  const from = ts === undefined ? cursors.next(query.cid, log.end) : log.positionAt(ts, exclusive)
  const events: UpstreamEvent[] = []
  let next = log.end
  for (const entry of log.from(Math.max(from, cursors.start(query.cid), scanFrom))) {
    if (ts !== undefined && (exclusive ? entry.at <= ts : entry.at < ts)) continue
    if (!query.all && entry.item.type !== 'agentResponse') continue
    events.push(entry.item)
    next = entry.position + 1
    if (events.length === MAX_EVENTS) break
  }
  return { events, next }
}
