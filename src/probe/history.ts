import { historyCall } from './endpoints.js'
import type { Outcome, ProbeHttp } from './http.js'
import { FUTURE_MS } from './limits.js'
import type { HistoryFinding } from './types.js'

type Honoured = HistoryFinding['limit']

/**
 * The history's shape and the parameters it honours. Its query names are not
 * public: the emulator's `from`/`to`/`limit`, and `fromTimestamp`/`limit` of
 * a sibling history API of the platform, are tried in turn. The client has
 * two turns by now, so `limit=1` can show, and a span that starts tomorrow
 * holds none of them.
 */
export async function probeHistory (http: ProbeHttp, clientId: string, now: number): Promise<HistoryFinding> {
  const all = await http.call(historyCall(clientId))
  const read = readHistory(all)
  const status = all.kind === 'answer' ? all.status : 'unknown'
  if (read === undefined) return { shape: 'unknown', status, items: 'unknown', limit: 'unknown', fromTo: 'unknown', fromTimestamp: 'unknown' }
  const from = now + FUTURE_MS
  const limit = await http.call(historyCall(clientId, { limit: 1 }))
  const fromTo = await http.call(historyCall(clientId, { from, to: from + 3_600_000 }))
  const fromTimestamp = await http.call(historyCall(clientId, { fromTimestamp: from, toTimestamp: from + 3_600_000 }))
  return {
    shape: read.shape,
    status,
    items: read.items,
    limit: honoured(limit, read.items, 1),
    fromTo: honoured(fromTo, read.items, 0),
    fromTimestamp: honoured(fromTimestamp, read.items, 0)
  }
}

/** 'yes' when the answer has `expected` items where the unfiltered one had more. */
function honoured (outcome: Outcome, allItems: number, expected: number): Honoured {
  if (outcome.kind === 'answer' && outcome.status >= 400 && outcome.status < 500) return 'rejected'
  const read = readHistory(outcome)
  if (read === undefined || allItems <= expected) return 'unknown'
  if (read.items === expected) return 'yes'
  return read.items === allItems ? 'no' : 'unknown'
}

interface ReadHistory { shape: Exclude<HistoryFinding['shape'], 'unknown'>, items: number }

/** Request/response pairs, one entry per message, an events list, or another shape. */
function readHistory (outcome: Outcome): ReadHistory | undefined {
  if (outcome.kind !== 'answer' || outcome.status !== 200 || outcome.json === undefined) return undefined
  const body = outcome.json as Record<string, unknown> | unknown[] | null
  if (Array.isArray(body)) return { shape: body.every(isEventElement) ? 'events' : 'other', items: body.length }
  if (typeof body !== 'object' || body === null) return { shape: 'other', items: 0 }
  if (Array.isArray(body.events)) return { shape: 'events', items: body.events.length }
  if (!Array.isArray(body.messages)) return { shape: 'other', items: 0 }
  const messages = body.messages as unknown[]
  const first = messages[0] as Record<string, unknown> | undefined
  if (typeof body.totalCount === 'number' || (first !== undefined && ('author' in first || 'textMessage' in first))) {
    return { shape: 'entries', items: messages.length }
  }
  if (first === undefined) return { shape: 'empty', items: 0 }
  return { shape: 'request' in first && 'response' in first ? 'pairs' : 'other', items: messages.length }
}

function isEventElement (item: unknown): boolean {
  return typeof item === 'object' && item !== null && 'type' in item && 'event' in item
}
