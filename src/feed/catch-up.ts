import type { CursorPosition } from './cursor.js'
import { UPSTREAM_PAGE, parseAnswer, samePoll, type FeedEvent } from './event.js'
import { FeedLimitError, type FeedKey } from './hub.js'
import type { ChatApi } from '../upstream/chat-api.js'

/** Answers read back from the upstream for one catch-up, at most. */
const PAGES = 8

export const CURSOR_GONE = 'the event of this cursor is no longer kept upstream'
export const TOO_FAR_BACK = 'the upstream could not be read back that far'
export const UNREADABLE = 'the upstream could not be read to catch up'
export const OLDER_THAN_KEPT = 'cursor is older than the events kept for this connection'

/**
 * Resumes from before memory that read the upstream again, per client: a
 * few at once (tabs coming back together), then one every few seconds, so
 * that hellos cannot turn into a stream of upstream reads.
 */
export const CATCH_UPS_BURST = 4
export const CATCH_UPS_PER_S = 0.2

/** A client asked for more upstream catch-up reads than it may: the socket is told to try again later. */
export class CatchUpLimitError extends FeedLimitError {
  constructor () {
    super()
    this.message = 'too many resumes from older cursors; try again later'
  }
}

/** Where a catch-up ends: before an event (not included), or through one (included); neither reads to the newest. */
export interface CatchUpEnd {
  before?: CursorPosition | undefined
  through?: CursorPosition | undefined
}

/**
 * The one way the bridge reads a span of a connection's events back from the
 * upstream (a resume older than memory, a gap in a cluster stream): the
 * events after `from` in the upstream's order, up to `end`; or why they cannot
 * be had.
 *
 * `from` with a hash is a delivered event: the read starts at its time (less
 * the lag of late-stamped events the channel has shown, since such an event
 * can follow it with an earlier stamp) and passes it, so nothing before it
 * comes back. `from` without a hash is a time: everything from then on is
 * new. Pages are asked by time and de-duplicated by content, so the `ts`
 * bound's inclusiveness and the overlap of pages do not matter.
 */
export async function readAfter (api: ChatApi, key: FeedKey, from: CursorPosition, end: CatchUpEnd = {}): Promise<FeedEvent[] | string> {
  const out: FeedEvent[] = []
  const seen = new Set<string>()
  const traits = api.traits
  let found = from.hash === ''
  let ts = from.hash === '' ? from.ts : Math.max(0, from.ts - traits.lateStampMs)
  try {
    for (let page = 0; page < PAGES; page++) {
      const events = parseAnswer(await api.events({ clientId: key.clientId, cid: key.cid, all: key.all, ts: traits.tsFor(ts) }), ts)
      let newest = ts
      let fresh = 0
      for (const ev of events) {
        if (ev.ts > newest) newest = ev.ts
        if (seen.has(ev.hash)) continue
        seen.add(ev.hash)
        fresh++
        if (!found) {
          found = samePoll(ev, from)
          continue
        }
        if (end.before !== undefined && samePoll(ev, end.before)) return out
        out.push(ev)
        if (end.through !== undefined && samePoll(ev, end.through)) return out
      }
      if (!found) return CURSOR_GONE
      // A short page is the end; a full one that brought nothing new cannot be paged further by time.
      if (events.length < UPSTREAM_PAGE || fresh === 0) break
      ts = newest
    }
  } catch {
    return UNREADABLE
  }
  return end.before === undefined && end.through === undefined ? out : TOO_FAR_BACK
}
