import { EmulatorError, ErrorCode } from './errors.js'
import { matchEvents, type EventsQuery } from './events-query.js'
import type { HeldPoll, HeldPolls } from './held-polls.js'
import type { ProfileFlags } from './settings.js'
import type { ClientRecord } from './store.js'
import type { UpstreamEvent } from './types.js'

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
  readonly #ctx: PollContext
  readonly #target: PollTarget
  readonly #query: EventsQuery
  readonly #respond: (answer: PollAnswer) => void
  #scanFrom = 0
  #timer: NodeJS.Timeout | undefined
  #done = false

  constructor (ctx: PollContext, target: PollTarget, query: EventsQuery, respond: (answer: PollAnswer) => void) {
    this.cid = query.cid
    this.#ctx = ctx
    this.#target = target
    this.#query = query
    this.#respond = respond
  }

  start (): void {
    const { log, cursors } = this.#target.client
    cursors.see(this.cid, log.end)
    if (this.#tryAnswer()) return
    if (this.#ctx.closing || this.#ctx.flags['no-hold']) return this.end()
    this.#ctx.polls.add(this.#target.token, this.#target.clientId, this)
    this.#timer = setTimeout(() => this.#expire(), this.#ctx.holdMs)
    this.#timer.unref()
  }

  wake (): void {
    if (!this.#done) this.#tryAnswer()
  }

  end (): void {
    this.#finish([], this.#target.client.log.end)
  }

  /**
   * The hold time is over. A 408 says nothing was read, so it leaves the
   * cursor where it was, as an abort does.
   */
  #expire (): void {
    if (!this.#ctx.flags['timeout-408']) return this.end()
    this.#done = true
    this.#release()
    this.#respond(new EmulatorError(408, ErrorCode.TIMEOUT, 'Request timeout'))
  }

  /** The client went away while held: forget the poll and leave the cursor where it was. */
  abort (): void {
    if (this.#done) return
    this.#done = true
    this.#release()
  }

  #tryAnswer (): boolean {
    const { log, cursors } = this.#target.client
    const match = matchEvents(log, cursors, this.#query, this.#scanFrom, this.#ctx.flags)
    if (match.events.length === 0) {
      this.#scanFrom = log.end
      return false
    }
    this.#finish(match.events, match.next)
    return true
  }

  #finish (events: UpstreamEvent[], next: number): void {
    if (this.#done) return
    this.#done = true
    this.#release()
    this.#target.client.cursors.move(this.cid, next)
    this.#respond(events)
  }

  #release (): void {
    clearTimeout(this.#timer)
    this.#ctx.polls.delete(this.#target.token, this.#target.clientId, this)
  }
}
