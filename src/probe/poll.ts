import { eventsOf } from '../upstream/calls.js'
import { eventsCall, type PollQuery } from './endpoints.js'
import type { Answer, ProbeHttp } from './http.js'

export type UpstreamElement = Record<string, unknown>

/**
 * One /events call, read as the probe needs it: events, nothing (an empty
 * answer, a 408, or still held when its time ran out), or a failure.
 */
export type PollResult =
  | { kind: 'events', events: UpstreamElement[], answer: Answer }
  | { kind: 'nothing', why: 'empty' | '408' | 'held', answer: Answer | undefined, sentAt: number, receivedAt: number }
  | { kind: 'failed', reason: string, answer: Answer | undefined }

export async function poll (http: ProbeHttp, q: PollQuery): Promise<PollResult> {
  const outcome = await http.call(eventsCall(q))
  if (outcome.kind === 'timeout') return { kind: 'nothing', why: 'held', answer: undefined, sentAt: outcome.sentAt, receivedAt: outcome.receivedAt }
  if (outcome.kind !== 'answer') return { kind: 'failed', reason: outcome.reason, answer: undefined }
  const { sentAt, receivedAt } = outcome
  if (outcome.status === 408) return { kind: 'nothing', why: '408', answer: outcome, sentAt, receivedAt }
  if (outcome.status !== 200) return { kind: 'failed', reason: `/events answered ${outcome.status}: ${http.mask(outcome.text.slice(0, 120))}`, answer: outcome }
  const events = eventsOf(outcome.json)
  if (events === null) return { kind: 'failed', reason: `/events answered a body of another shape: ${http.mask(outcome.text.slice(0, 120))}`, answer: outcome }
  if (events.length === 0) return { kind: 'nothing', why: 'empty', answer: outcome, sentAt, receivedAt }
  return { kind: 'events', events, answer: outcome }
}

/** The events of a result; none for nothing or a failure. */
export const eventsIn = (result: PollResult): UpstreamElement[] => result.kind === 'events' ? result.events : []

/**
 * An event's identity across answers. The server sends each one verbatim
 * every time, so its JSON is the same; two distinct events rarely share all
 * of type, ids, time and body.
 */
export const identityOf = (element: UpstreamElement): string => JSON.stringify(element)

export function questionIdOf (element: UpstreamElement): unknown {
  const inner = element.event
  return typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>).questionId : undefined
}
