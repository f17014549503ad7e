import type { EventLog } from './event-log.js'
import { NO_PROFILE, type ProfileFlags } from './settings.js'
import type { UpstreamEvent } from './types.js'

/** The documented cap of one /events response. */
export const MAX_EVENTS = 250

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
  readonly #cidStart = new Map<string, number>()
  readonly #next = new Map<string, number>()
  readonly #scoped: boolean

  constructor (flags: ProfileFlags = NO_PROFILE) {
    this.#scoped = !flags['unscoped-cid']
  }

  /** Records the first sight of a key: a key never seen starts at the end of the log. */
  see (cid: string | undefined, end: number): void {
    const key = this.#key(cid)
    if (this.#scoped && cid !== undefined && !this.#cidStart.has(cid)) this.#cidStart.set(cid, end)
    if (!this.#next.has(key)) this.#next.set(key, end)
  }

  move (cid: string | undefined, next: number): void {
    this.#next.set(this.#key(cid), next)
  }

  next (cid: string | undefined, end: number): number {
    return this.#next.get(this.#key(cid)) ?? end
  }

  start (cid: string | undefined): number {
    return cid === undefined ? 0 : this.#cidStart.get(cid) ?? 0
  }

  #key (cid: string | undefined): string {
    return this.#scoped ? cid ?? '' : ''
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
