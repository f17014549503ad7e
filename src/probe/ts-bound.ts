import type { ProbeHttp } from './http.js'
import { QUICK_MS } from './limits.js'
import { identityOf, poll, type UpstreamElement } from './poll.js'
import { eventTimeOf } from './times.js'
import type { ProbeReport, TimestampFinding } from './types.js'

export interface TsBoundFinding {
  tsBound: ProbeReport['tsBound']
  keepsMs: TimestampFinding['keepsMs']
}

/**
 * Whether `ts` is inclusive: a poll from the events' earliest time either
 * returns the events of that time or not. The earliest, so that an
 * exclusive server still answers at once with the later ones; with nothing
 * later, it holds the poll, which the probe ends after QUICK_MS.
 *
 * With whole-second prints, first: does a poll from one millisecond past an
 * event's printed second still return it? Only if the server keeps the
 * milliseconds it does not print. If it does, the exact time of an event is
 * not known and inclusiveness cannot be decided.
 */
export async function probeTsBound (http: ProbeHttp, clientId: string, cid: string, events: UpstreamElement[], precision: TimestampFinding['precision']): Promise<TsBoundFinding> {
  const first = earliest(events)
  if (first === undefined || precision === 'unknown') return { tsBound: 'unknown', keepsMs: 'unknown' }
  let keepsMs: TsBoundFinding['keepsMs'] = precision === 'ms' ? 'yes' : 'unknown'
  // Every event of that second: one has unprinted milliseconds of 0 once in a thousand, all of them hardly ever.
  if (precision === 'seconds') keepsMs = await returns(http, clientId, cid, first.ms + 1, first.ids)
  const at = await returns(http, clientId, cid, first.ms, first.ids)
  if (at === 'unknown') return { tsBound: 'unknown', keepsMs }
  if (at === 'no') return { tsBound: 'exclusive', keepsMs }
  return { tsBound: precision === 'seconds' && keepsMs !== 'no' ? 'undecidable' : 'inclusive', keepsMs }
}

/** The earliest time of the events, and the events of that time. */
function earliest (events: UpstreamElement[]): { ms: number, ids: Set<string> } | undefined {
  const timed = events.flatMap((e) => {
    const ms = eventTimeOf(e).ms
    return ms === undefined ? [] : [{ ms, id: identityOf(e) }]
  })
  if (timed.length === 0) return undefined
  const ms = Math.min(...timed.map((e) => e.ms))
  return { ms, ids: new Set(timed.filter((e) => e.ms === ms).map((e) => e.id)) }
}

/** Whether a poll from `ts` returns one of the events; an empty, held or 408 answer returns nothing. */
async function returns (http: ProbeHttp, clientId: string, cid: string, ts: number, ids: Set<string>): Promise<'yes' | 'no' | 'unknown'> {
  const result = await poll(http, { clientId, cid, ts, timeoutMs: QUICK_MS })
  if (result.kind === 'failed') return 'unknown'
  if (result.kind === 'nothing') return 'no'
  return result.events.some((e) => ids.has(identityOf(e))) ? 'yes' : 'no'
}
