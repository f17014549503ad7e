import { setTimeout as sleep } from 'node:timers/promises'
import type { ProbeHttp } from './http.js'
import { QUICK_MS } from './limits.js'
import { identityOf, poll, questionIdOf, type PollResult } from './poll.js'
import { sendTurn, type SentTurn } from './turn.js'
import type { ProbeReport } from './types.js'

/**
 * Whose server-side cursor a poll without `ts` reads: one per (client, cid),
 * or one per client, which two cids then take events from.
 *
 * On a client of its own, so that no poll the probe gave up on elsewhere can
 * take the event: two cids poll from the cursor at once (held, or answered
 * empty at once); one message is sent; each cid's poll (or, if it was
 * answered before the message, its next one) either gets the message's
 * events too, or one of them misses what the other took.
 */
export async function probeCursor (http: ProbeHttp, clientId: string, settleMs: number, errors: string[]): Promise<ProbeReport['cursor']> {
  const b = new CursorPoll(http, clientId, 'probe-b', settleMs + QUICK_MS)
  const c = new CursorPoll(http, clientId, 'probe-c', settleMs + QUICK_MS)
  // Held polls must have reached the server before the event comes; polls answered at once need no wait.
  await Promise.race([Promise.all([b.first, c.first]), sleep(settleMs)])
  b.markSend()
  c.markSend()
  const turn = await sendTurn(http, clientId, 'probe-b', 'probe cursor', errors)
  if (turn === undefined) {
    await Promise.all([b.first, c.first])
    return 'unknown'
  }
  const fromB = await b.taken(turn)
  const fromC = await c.taken(turn)
  if (fromB === undefined || fromC === undefined) return 'unknown'
  if ([...fromB].some((id) => fromC.has(id))) return 'per-cid'
  return fromB.size + fromC.size > 0 ? 'per-client' : 'unknown'
}

/** One cid's poll from the server-side cursor, and whether it was answered before the probe's message. */
class CursorPoll {
  readonly first: Promise<PollResult>
  private settled = false
  private early = false

  constructor (private readonly http: ProbeHttp, private readonly clientId: string, private readonly cid: string, timeoutMs: number) {
    this.first = poll(http, { clientId, cid, timeoutMs })
    void this.first.then(() => { this.settled = true })
  }

  /** Called just before the message is sent. */
  markSend (): void {
    this.early = this.settled
  }

  /** The turn's events this cid got from its cursor; undefined when its poll failed. */
  async taken (turn: SentTurn): Promise<Set<string> | undefined> {
    let result = await this.first
    // Answered before the message, so it could not hold it: the next poll from the cursor gets it, if the cursor is this cid's.
    if (this.early && result.kind === 'nothing') result = await poll(this.http, { clientId: this.clientId, cid: this.cid, timeoutMs: QUICK_MS })
    if (result.kind === 'failed') return undefined
    if (result.kind === 'nothing') return new Set()
    return new Set(result.events.filter((e) => questionIdOf(e) === turn.questionId).map(identityOf))
  }
}
