import { eventHash, type CursorPosition } from './cursor.js'
import { eventTime } from '../upstream/calls.js'

/** One upstream event, serialised once: every socket that gets it gets these bytes. */
export interface FeedEvent { ts: number, hash: string, json: string }

/** The upstream's page size: an answer this long may have more behind it. */
export const UPSTREAM_PAGE = 250

/** An event as read from an answer: `untimed` when its time was not its own. */
export interface PolledEvent extends FeedEvent { untimed?: true }

/**
 * The events of one /events answer, serialised once, in time order (a
 * reordered answer is put back in order, stable for equal times). An element
 * whose time cannot be read is still an event: it gets `fallbackTs` (where
 * the poll stood) and is known by its content alone.
 */
export function parseAnswer (elements: Array<Record<string, unknown>>, fallbackTs: number): PolledEvent[] {
  const events: PolledEvent[] = []
  for (const element of elements) {
    const ts = eventTime(element)
    const json = JSON.stringify(element)
    if (ts !== undefined) {
      events.push({ ts, hash: eventHash(json), json })
    } else {
      events.push({ ts: fallbackTs, hash: eventHash(json), json, untimed: true })
    }
  }
  return events.sort((a, b) => a.ts - b.ts)
}

export const positionOf = (e: CursorPosition): CursorPosition => ({ ts: e.ts, hash: e.hash })

export const samePoll = (a: CursorPosition | undefined, b: CursorPosition | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.ts === b.ts && a.hash === b.hash)

/** Hashes of untimed events kept at most: such an event may come back in every answer, whatever `ts` says. */
const UNTIMED_KEPT = 64
/** Hashes kept at most, whatever their times. */
const MAX_KEPT = 1024

/**
 * The events one connection has had lately, by hash: what a re-read or the
 * inclusive `ts` bound brings again is recognised and dropped, whatever its
 * stamp. Timed events are kept while they are within `keepMs` of the newest;
 * events without a time of their own are kept apart, the most recent few.
 */
export class EventWindow {
  /** Made on the first event: most idle connections never get one, and there are thousands of them. */
  private timed: Map<string, number> | undefined
  private untimed: Set<string> | undefined
  /** The newest upstream time delivered; undefined before the first event. */
  newest: number | undefined

  has (hash: string): boolean {
    return this.timed?.has(hash) === true || this.untimed?.has(hash) === true
  }

  add (ev: PolledEvent): void {
    if (ev.untimed === true) {
      const set = (this.untimed ??= new Set())
      set.add(ev.hash)
      if (set.size > UNTIMED_KEPT) set.delete(set.values().next().value as string)
      return
    }
    ;(this.timed ??= new Map()).set(ev.hash, ev.ts)
    if (this.newest === undefined || ev.ts > this.newest) this.newest = ev.ts
  }

  /** Whether some kept event is stamped exactly `ts`. */
  hasAt (ts: number): boolean {
    if (this.timed !== undefined) for (const t of this.timed.values()) if (t === ts) return true
    return false
  }

  /** Forgets timed events older than `keepMs` before the newest (and the oldest past the cap). */
  prune (keepMs: number): void {
    const timed = this.timed
    if (this.newest === undefined || timed === undefined) return
    const floor = this.newest - keepMs
    for (const [hash, t] of timed) if (t < floor) timed.delete(hash)
    while (timed.size > MAX_KEPT) timed.delete(timed.keys().next().value as string)
  }
}
