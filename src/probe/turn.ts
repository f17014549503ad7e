import { setTimeout as sleep } from 'node:timers/promises'
import { sendCall } from './endpoints.js'
import type { Answer, ProbeHttp } from './http.js'
import { COLLECT_MS, COLLECT_PAUSE_MS, COLLECT_POLLS, QUICK_MS } from './limits.js'
import { poll, questionIdOf, type UpstreamElement } from './poll.js'

/** A message the probe sent and the server's answer to it. */
export interface SentTurn {
  questionId: string
  /** The answer's `timestamp`, as written. */
  timestamp: unknown
  answer: Answer
}

/** Sends one text message the documented sync way; undefined when the send failed. */
export async function sendTurn (http: ProbeHttp, clientId: string, cid: string, query: string, errors: string[]): Promise<SentTurn | undefined> {
  const outcome = await http.call(sendCall(clientId, cid, query))
  if (outcome.kind !== 'answer') {
    errors.push(`send: ${outcome.reason}`)
    return undefined
  }
  const body = outcome.json as Record<string, unknown> | undefined
  if (outcome.status !== 200 || typeof body?.questionId !== 'string') {
    errors.push(`send answered ${outcome.status}: ${http.mask(outcome.text.slice(0, 120))}`)
    return undefined
  }
  return { questionId: body.questionId, timestamp: body.timestamp, answer: outcome }
}

/**
 * The client's whole log (`ts=0`) once the bot's answer to each turn is in
 * it: a server may store an answer a while after the send returned. A few
 * polls, paced, within COLLECT_MS; the last answer is returned, in the
 * server's order, which is what tells a late-stamped answer.
 */
export async function collectEvents (http: ProbeHttp, clientId: string, cid: string, turns: SentTurn[], errors: string[]): Promise<UpstreamElement[]> {
  const until = Date.now() + COLLECT_MS
  let events: UpstreamElement[] = []
  for (let i = 0; i < COLLECT_POLLS; i++) {
    const result = await poll(http, { clientId, cid, ts: 0, timeoutMs: Math.max(1, Math.min(QUICK_MS, until - Date.now())) })
    if (result.kind === 'failed') errors.push(`collect: ${result.reason}`)
    if (result.kind === 'events') events = result.events
    if (turns.every((turn) => events.some((e) => e.type === 'botResponse' && questionIdOf(e) === turn.questionId))) break
    if (Date.now() + COLLECT_PAUSE_MS >= until) break
    await sleep(COLLECT_PAUSE_MS)
  }
  return events
}
