import type { ProbeCall } from './http.js'

/**
 * Every Chat API call the probe makes. They are not the bridge's calls
 * (src/upstream/calls.ts): the probe asks on purpose what the bridge never
 * sends (a wrong token, the parameter names of a sibling history API, a poll
 * on a cid nobody uses), to see how the server takes it.
 */

const enc = encodeURIComponent
const clientPath = (clientId: string): string => `/client/${enc(clientId)}`

/** The token of the bad-token check: the real one with a suffix, so that it surely names no channel. */
export const badTokenOf = (token: string): string => `${token}x-probe-invalid`

export interface PollQuery {
  clientId: string
  cid: string
  /** Epoch ms; undefined reads from the server-side cursor. */
  ts?: number | undefined
  timeoutMs: number
}

/** `all=true` always: the probe watches every event of its client, not only agent replies. */
export function eventsCall (q: PollQuery, token?: string): ProbeCall {
  const query = { clientId: q.clientId, cid: q.cid, ts: q.ts === undefined ? undefined : Math.floor(q.ts), all: true }
  return { method: 'GET', path: '/events', query, timeoutMs: q.timeoutMs, ...(token === undefined ? {} : { token }) }
}

/** The documented sync send. */
export const sendCall = (clientId: string, cid: string, query: string): ProbeCall =>
  ({ method: 'POST', path: '', body: { clientId, query, cid } })

/** The cheapest call that names the token and changes nothing upstream. */
export const unreadCountCall = (clientId: string): ProbeCall =>
  ({ method: 'GET', path: `${clientPath(clientId)}/message-not-read-count` })

export const getStateCall = (clientId: string): ProbeCall => ({ method: 'GET', path: `${clientPath(clientId)}/state` })

export const setStateCall = (clientId: string, state: Record<string, unknown>): ProbeCall =>
  ({ method: 'POST', path: `${clientPath(clientId)}/state`, body: state })

export const statusCall = (clientId: string, questionId: string): ProbeCall =>
  ({ method: 'GET', path: `${clientPath(clientId)}/message/${enc(questionId)}/status` })

export const historyCall = (clientId: string, query: Record<string, number> = {}): ProbeCall =>
  ({ method: 'GET', path: `${clientPath(clientId)}/history`, query })
