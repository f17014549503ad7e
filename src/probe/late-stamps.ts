import type { UpstreamElement } from './poll.js'
import { eventTimeOf } from './times.js'
import type { LateStampFinding } from './types.js'

/**
 * Whether an event is stamped earlier than one stored before it (a bot
 * answer stamped with its request's time but stored after what came
 * meanwhile), read from the order of a `ts=0` answer, which is the order of
 * storage. A poll from the later event's time would never return such an
 * event. The probe's state change and second message sit between the first
 * message and its answer, so a late answer has something to be later than.
 */
export function lateStampFinding (events: UpstreamElement[]): LateStampFinding {
  let latest = Number.NEGATIVE_INFINITY
  let timed = 0
  let lag = 0
  for (const e of events) {
    const ms = eventTimeOf(e).ms
    if (ms === undefined) continue
    timed++
    if (ms < latest) lag = Math.max(lag, latest - ms)
    latest = Math.max(latest, ms)
  }
  if (timed < 2) return { seen: 'unknown', lagMs: 'unknown' }
  return lag > 0 ? { seen: 'yes', lagMs: lag } : { seen: 'no', lagMs: 0 }
}
