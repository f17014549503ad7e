import { parseUpstreamTime } from '../upstream/calls.js'
import type { UpstreamElement } from './poll.js'
import { eventTimeFormat, eventTimeOf, precisionOfAll, zoneOfAll } from './times.js'
import type { SentTurn } from './turn.js'
import type { ClockFinding, TimestampFinding } from './types.js'

/**
 * How the upstream writes times, from the send answers and the events they
 * made; `keepsMs` comes from the `ts` polls (see ts-bound.ts).
 */
export function timestampFinding (turns: SentTurn[], events: UpstreamElement[]): Omit<TimestampFinding, 'keepsMs'> {
  const times = events.map(eventTimeOf)
  const raws = [...turns.map((t) => t.timestamp), ...times.map((t) => t.raw)]
  const first = turns[0]
  return {
    sample: typeof first?.timestamp === 'string' || typeof first?.timestamp === 'number' ? String(first.timestamp) : 'unknown',
    precision: precisionOfAll(raws),
    zone: zoneOfAll(raws),
    eventTimes: eventTimeFormat(times),
    untimedTypes: [...new Set(events.filter((_, i) => times[i]?.spot === 'missing').map((e) => String(e.type)))],
    clock: first === undefined ? unknownClock : clockOf(first)
  }
}

/**
 * The upstream's clock beside ours and beside its own Date header, from one
 * send: its stamp is taken between our request and its answer, so our
 * midpoint is within half the round trip of it. The Date header has whole
 * seconds only.
 */
function clockOf (turn: SentTurn): ClockFinding {
  const stamp = parseUpstreamTime(turn.timestamp)
  const local = Math.round((turn.answer.sentAt + turn.answer.receivedAt) / 2)
  const date = turn.answer.date
  return {
    stampVsLocalMs: stamp === undefined ? 'unknown' : stamp - local,
    stampVsDateMs: stamp === undefined || date === undefined ? 'unknown' : stamp - date,
    dateVsLocalMs: date === undefined ? 'unknown' : date - local
  }
}

export const unknownClock: ClockFinding = { stampVsLocalMs: 'unknown', stampVsDateMs: 'unknown', dateVsLocalMs: 'unknown' }
