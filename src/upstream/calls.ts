import type { RequestFrame } from '../socket/protocol.js'
import { pathSegment } from './json.js'

/**
 * Where each bridge request goes upstream, and with what. This is the one
 * place that knows the Chat API's paths and bodies: paths marked [chosen] in
 * CHATAPI.md may differ on a live server, and this is where to adapt them.
 */
export interface UpstreamCall {
  /** A stable name, used in logs and metrics; never contains the token. */
  name: string
  method: 'GET' | 'POST'
  /** Path below `{base}/{token}`, starting with '' or '/'. */
  path: string
  query?: Record<string, string>
  body?: unknown
}

const enc = encodeURIComponent

/** Every value put in a path goes through pathSegment, which refuses `.`, `..` and empty segments. */
export function callFor (req: RequestFrame, clientId: string, cid: string): UpstreamCall {
  const client = `/client/${pathSegment(clientId, 'clientId')}`
  switch (req.type) {
    case 'send':
    case 'sendAsync': {
      const body: Record<string, unknown> = { clientId, cid }
      if (req.query !== undefined) body.query = req.query
      if (req.event !== undefined) body.event = req.event
      if (req.data !== undefined) body.data = req.data
      return { name: req.type, method: 'POST', path: req.type === 'send' ? '' : '/async', body }
    }
    case 'history': {
      const query: Record<string, string> = {}
      if (req.from !== undefined) query.from = String(req.from)
      if (req.to !== undefined) query.to = String(req.to)
      if (req.limit !== undefined) query.limit = String(req.limit)
      return { name: 'history', method: 'GET', path: `${client}/history`, query }
    }
    case 'getState':
      return { name: 'getState', method: 'GET', path: `${client}/state` }
    case 'setState':
      return { name: 'setState', method: 'POST', path: `${client}/state`, body: req.state }
    case 'getStatus':
      return { name: 'getStatus', method: 'GET', path: statusPath(client, req.questionId) }
    case 'setStatus':
      return { name: 'setStatus', method: 'POST', path: statusPath(client, req.questionId), body: { status: req.status } }
    case 'setStatuses':
      return { name: 'setStatuses', method: 'POST', path: `${client}/message-statuses`, body: { statuses: req.statuses } }
    case 'unreadCount':
      return { name: 'unreadCount', method: 'GET', path: `${client}/message-not-read-count` }
  }
}

function statusPath (client: string, questionId: string): string {
  return `${client}/message/${pathSegment(questionId, 'questionId')}/status`
}

export interface EventsQuery { clientId: string, cid: string, all: boolean, ts?: number | undefined }

/**
 * The /events call of one connection from `q.ts` (or the server-side
 * cursor), its query already in the path: a long poll per idle client is
 * made with it, so it is one string, built without a URLSearchParams.
 */
export function eventsCall (q: EventsQuery): UpstreamCall {
  // clientId and cid go in the query, where a dot segment means nothing to a proxy.
  let path = '/events?clientId=' + enc(q.clientId) + '&cid=' + enc(q.cid) + (q.all ? '&all=true' : '&all=false')
  if (q.ts !== undefined) path += '&ts=' + String(q.ts)
  return { name: 'events', method: 'GET', path }
}

/**
 * Upstream timestamps are ISO-8601, with or without milliseconds, usually
 * with no zone; no zone means UTC (`Date.parse` alone would read it as local
 * time). An epoch number is taken too: milliseconds, or seconds when it is
 * too small to be milliseconds of this century.
 *
 * The client SDK's parseTimestamp reads the same formats but is no drop-in:
 * it takes more (epoch 0, numeric strings, `+03`, a comma fraction, blanks
 * around the time, any fraction length), rounds epoch seconds where this
 * floors them, and refuses what only `Date.parse` reads. Events and cursors
 * are stamped by this one, so what the bridge accepts stays as it is.
 */
export function parseUpstreamTime (value: unknown): number | undefined {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value <= 0) return undefined
    return Math.floor(value < 1e11 ? value * 1000 : value)
  }
  if (typeof value !== 'string' || value.length < 10 || value.length > 40) return undefined
  const zoned = /(Z|[+-]\d\d:?\d\d)$/i.test(value)
  const ms = Date.parse(zoned ? value : value + 'Z')
  return Number.isFinite(ms) ? ms : undefined
}

/**
 * The upstream time of one element of `{ events: [...] }`: `event.timestamp`,
 * else the element's own `timestamp` (some servers put it there and leave a
 * null inside); undefined when neither can be read.
 */
export function eventTime (element: Record<string, unknown>): number | undefined {
  const inner = element.event
  if (typeof inner === 'object' && inner !== null) {
    const t = parseUpstreamTime((inner as Record<string, unknown>).timestamp)
    if (t !== undefined) return t
  }
  return parseUpstreamTime(element.timestamp)
}

/** Checks the shape of an /events answer and returns its elements, or null when the shape is wrong. */
export function eventsOf (body: unknown): Array<Record<string, unknown>> | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null
  const events = (body as Record<string, unknown>).events
  if (!Array.isArray(events)) return null
  for (const e of events) {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) return null
  }
  return events as Array<Record<string, unknown>>
}
