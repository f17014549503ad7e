import type { CursorPosition } from '../cursor.js'
import type { FeedKey } from '../hub.js'
import { UPSTREAM_PAGE, parseAnswer, type FeedEvent } from '../poller.js'
import type { ChatApi } from '../upstream/client.js'

/** Answers read back from the upstream to bridge one gap, at most. */
const PAGES = 8

const same = (a: CursorPosition, b: CursorPosition): boolean => a.ts === b.ts && a.hash === b.hash

/**
 * The upstream events right after `from`, up to and including `to`, or with
 * no `to` up to the newest; or why they cannot be had. Reading starts at
 * `from`'s own millisecond (the upstream's `ts` is inclusive) and passes
 * `from` itself, so nothing before it comes back.
 */
export async function eventsBetween (api: ChatApi, key: FeedKey, from: CursorPosition, to: CursorPosition | undefined): Promise<FeedEvent[] | string> {
  const out: FeedEvent[] = []
  const seen = new Set<string>()
  let foundFrom = false
  let ts = from.ts
  try {
    for (let page = 0; page < PAGES; page++) {
      const events = parseAnswer(await api.events({ clientId: key.clientId, cid: key.cid, all: key.all, ts }))
      for (const ev of events) {
        if (!foundFrom) {
          foundFrom = same(ev, from)
          continue
        }
        if (seen.has(`${ev.ts}.${ev.hash}`)) continue
        seen.add(`${ev.ts}.${ev.hash}`)
        out.push(ev)
        if (to !== undefined && same(ev, to)) return out
      }
      if (!foundFrom) return 'the event of this cursor is no longer kept upstream'
      if (events.length < UPSTREAM_PAGE) break
      ts = (events.at(-1) as FeedEvent).ts
    }
  } catch {
    return 'the upstream did not answer to fill the gap'
  }
  return to === undefined ? out : 'events were missed and the upstream could not fill the gap'
}

/**
 * Everything the upstream keeps for the connection, from its start (`ts` 0;
 * the cid scopes it) up to and including `to`, or with no `to` up to the
 * newest; or why it cannot be had.
 */
export async function eventsFromStart (api: ChatApi, key: FeedKey, to: CursorPosition | undefined): Promise<FeedEvent[] | string> {
  const out: FeedEvent[] = []
  const seen = new Set<string>()
  let ts = 0
  try {
    for (let page = 0; page < PAGES; page++) {
      const events = parseAnswer(await api.events({ clientId: key.clientId, cid: key.cid, all: key.all, ts }))
      for (const ev of events) {
        if (seen.has(`${ev.ts}.${ev.hash}`)) continue
        seen.add(`${ev.ts}.${ev.hash}`)
        out.push(ev)
        if (to !== undefined && same(ev, to)) return out
      }
      if (events.length < UPSTREAM_PAGE) break
      ts = (events.at(-1) as FeedEvent).ts
    }
  } catch {
    return 'the upstream did not answer to fill the gap'
  }
  return to === undefined ? out : 'events were missed and the upstream could not fill the gap'
}
