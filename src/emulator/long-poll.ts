/**
 * The /events long poll: one held request from arrival to answer, and the
 * index of held requests that an append wakes.
 */
import type { ClientRecord } from './channel-store.js'
import { EmulatorError, ErrorCode } from './emulator-error.js'
import { matchEvents, type EventsQuery, type UpstreamEvent } from './event-log.js'
import type { ProfileFlags } from './profiles.js'

/** A held /events request, as the index sees it. */
export interface HeldPoll {
  readonly cid: string | undefined
  /** Answers if something matches now; called after each append to its client. */
  wake(): void
  /** Answers with what it has (nothing), because the emulator closes. */
  end(): void
}

/**
 * Held polls indexed by (token, clientId), so that an append wakes only that
 * client's polls and never scans the others. Also counts polls per cid and
 * keeps the peak of each count for the tests.
 */
export class HeldPolls {
  private readonly byClient = new Map<string, Set<HeldPoll>>()
  private readonly counts = new Map<string, number>()
  private readonly peaks = new Map<string, number>()
  private held = 0

  get total (): number {
    return this.held
  }

  add (token: string, clientId: string, poll: HeldPoll): void {
    const k = clientKey(token, clientId)
    let polls = this.byClient.get(k)
    if (polls === undefined) {
      polls = new Set()
      this.byClient.set(k, polls)
    }
    polls.add(poll)
    this.held++
    this.count(countKey(k, poll.cid ?? ''), 1)
    this.count(countKey(k, undefined), 1)
  }

  delete (token: string, clientId: string, poll: HeldPoll): void {
    const k = clientKey(token, clientId)
    const polls = this.byClient.get(k)
    if (polls === undefined || !polls.delete(poll)) return
    if (polls.size === 0) this.byClient.delete(k)
    this.held--
    this.count(countKey(k, poll.cid ?? ''), -1)
    this.count(countKey(k, undefined), -1)
  }

  wake (token: string, clientId: string): void {
    const polls = this.byClient.get(clientKey(token, clientId))
    if (polls === undefined) return
    // A copy, because an answered poll leaves the set while we walk it.
    for (const poll of [...polls]) poll.wake()
  }

  active (token: string, clientId: string, cid?: string): number {
    return this.counts.get(countKey(clientKey(token, clientId), cid)) ?? 0
  }

  peak (token: string, clientId: string, cid?: string): number {
    return this.peaks.get(countKey(clientKey(token, clientId), cid)) ?? 0
  }

  endAll (): void {
    for (const polls of [...this.byClient.values()]) {
      for (const poll of [...polls]) poll.end()
    }
  }

  private count (k: string, delta: number): void {
    const n = (this.counts.get(k) ?? 0) + delta
    if (n === 0) this.counts.delete(k)
    else this.counts.set(k, n)
    if (n > (this.peaks.get(k) ?? 0)) this.peaks.set(k, n)
  }
}

function clientKey (token: string, clientId: string): string {
  return `${token}\u0000${clientId}`
}

/** cid undefined means "every cid"; a poll without a cid counts under ''. */
function countKey (client: string, cid: string | undefined): string {
  return cid === undefined ? `${client}\u0000*` : `${client}\u0001${cid}`
}

export interface PollContext {
  polls: HeldPolls
  holdMs: number
  /** True once the emulator closes: a new poll is answered at once instead of held. */
  readonly closing: boolean
  flags: ProfileFlags
}

/** What a poll answers: the events, or the error of a hold that expired ('timeout-408'). */
export type PollAnswer = UpstreamEvent[] | EmulatorError

export interface PollTarget {
  token: string
  clientId: string
  client: ClientRecord
}

/**
 * One /events request from arrival to answer. It answers at once when
 * something matches; otherwise it waits in the index until an append matches,
 * holdMs passes (an empty answer, or a 408 with 'timeout-408'), or the client
 * goes away (no answer). With 'no-hold' it never waits. Its only timer is the
 * hold timer.
 */
export class EventsPoll implements HeldPoll {
  readonly cid: string | undefined
  private readonly ctx: PollContext
  private readonly target: PollTarget
  private readonly query: EventsQuery
  private readonly respond: (answer: PollAnswer) => void
  private scanFrom = 0
  private timer: NodeJS.Timeout | undefined
  private done = false

  constructor (ctx: PollContext, target: PollTarget, query: EventsQuery, respond: (answer: PollAnswer) => void) {
    this.cid = query.cid
    this.ctx = ctx
    this.target = target
    this.query = query
    this.respond = respond
  }

  start (): void {
    const { log, cursors } = this.target.client
    cursors.see(this.cid, log.end)
    if (this.tryAnswer()) return
    if (this.ctx.closing || this.ctx.flags['no-hold']) return this.end()
    this.ctx.polls.add(this.target.token, this.target.clientId, this)
    this.timer = setTimeout(() => this.expire(), this.ctx.holdMs)
    this.timer.unref()
  }

  wake (): void {
    if (!this.done) this.tryAnswer()
  }

  end (): void {
    this.finish([], this.target.client.log.end)
  }

  /**
   * The hold time is over. A 408 says nothing was read, so it leaves the
   * cursor where it was, as an abort does.
   */
  private expire (): void {
    if (!this.ctx.flags['timeout-408']) return this.end()
    this.done = true
    this.release()
    this.respond(new EmulatorError(408, ErrorCode.TIMEOUT, 'Request timeout'))
  }

  /** The client went away while held: forget the poll and leave the cursor where it was. */
  abort (): void {
    if (this.done) return
    this.done = true
    this.release()
  }

  private tryAnswer (): boolean {
    const { log, cursors } = this.target.client
    const match = matchEvents(log, cursors, this.query, this.scanFrom, this.ctx.flags)
    if (match.events.length === 0) {
      this.scanFrom = log.end
      return false
    }
    this.finish(match.events, match.next)
    return true
  }

  private finish (events: UpstreamEvent[], next: number): void {
    if (this.done) return
    this.done = true
    this.release()
    this.target.client.cursors.move(this.cid, next)
    this.respond(events)
  }

  private release (): void {
    clearTimeout(this.timer)
    this.ctx.polls.delete(this.target.token, this.target.clientId, this)
  }
}
