import type { EventLog } from './event-log.js'
import type { UpstreamEvent } from './types.js'

/** The documented cap of one /events response. */
export const MAX_EVENTS = 250

export interface EventsQuery {
  cid: string | undefined
  /** Epoch ms, inclusive; undefined reads from the key's server-side cursor. */
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
 * Polls without a cid use the key ''.
 */
export class ReadCursors {
  readonly #cidStart = new Map<string, number>()
  readonly #next = new Map<string, number>()

  /** Records the first sight of a key: a key never seen starts at the end of the log. */
  see (cid: string | undefined, end: number): void {
    const key = cid ?? ''
    if (cid !== undefined && !this.#cidStart.has(cid)) this.#cidStart.set(cid, end)
    if (!this.#next.has(key)) this.#next.set(key, end)
  }

  move (cid: string | undefined, next: number): void {
    this.#next.set(cid ?? '', next)
  }

  next (cid: string | undefined, end: number): number {
    return this.#next.get(cid ?? '') ?? end
  }

  start (cid: string | undefined): number {
    return cid === undefined ? 0 : this.#cidStart.get(cid) ?? 0
  }
}

/**
 * What a /events request would return now. `scanFrom` lets a held poll skip
 * the entries it already found not to match, so waking it costs only the new
 * entries.
 */
export function matchEvents (log: EventLog, cursors: ReadCursors, query: EventsQuery, scanFrom = 0): EventsMatch {
  const from = query.ts === undefined ? cursors.next(query.cid, log.end) : log.positionAt(query.ts)
  const events: UpstreamEvent[] = []
  let next = log.end
  for (const entry of log.from(Math.max(from, cursors.start(query.cid), scanFrom))) {
    if (!query.all && entry.item.type !== 'agentResponse') continue
    events.push(entry.item)
    next = entry.position + 1
    if (events.length === MAX_EVENTS) break
  }
  return { events, next }
}
