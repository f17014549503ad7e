import { backoffDelay, type Backoff } from '@chatapi-bridge/client'
import type { CursorPosition } from './cursor.js'
import type { FeedEvent } from './event.js'
import { isChannelRejected } from '../upstream/upstream-answers.js'
import type { PollCall, PollQuery, PollSink, PollUpstream } from '../upstream/poll-upstream.js'
import type { ChannelTraits } from '../upstream/traits.js'
import type { BridgeError } from '../socket/errors.js'
import type { GateWaiter, PollGate } from './poll-gate.js'
import { StreakLog } from './streak-log.js'
import type { Log } from '../lib/log.js'
import { TokenBucket } from '../lib/token-bucket.js'
import { Ask, QUICK_MS, Timeline, type StartOutcome } from './timeline.js'

/** What every poller of a channel shares. */
export interface PollerContext {
  /** Where the long polls go: the channel's ChatApi. */
  upstream: PollUpstream
  /** What is known of the channel's upstream: its `ts` bound, its timestamps, its hold. */
  traits: ChannelTraits
  /** Waits after failures: the first retry within `baseMs`, none longer than `maxMs`. */
  backoff: Backoff
  /** Shared by the pollers of a channel, so an outage is logged once, not once per poller. */
  streak?: StreakLog | undefined
  /** Paces the first poll of new pollers, so a reconnect storm is not a storm upstream. */
  gate?: PollGate | undefined
  now?: () => number
  random?: () => number
}

/** What a poller reports to. */
export interface PollerSink {
  /** New events, each once, in upstream order. */
  onEvents: (events: FeedEvent[]) => void
  /** The upstream refused the channel token: polling has stopped. */
  onFatal: (err: BridgeError) => void
  /** The first poll has reached the upstream: the connection is known there from now on. */
  onListening?: (() => void) | undefined
  /** The outcome of starting after a delivered event, known at the first answer. */
  onStart?: ((outcome: StartOutcome) => void) | undefined
  readonly log: Log
}

/**
 * Polls that bring nothing new and come back at once (a server that does not
 * hold, an inclusive bound, a re-read) draw on this many credits, earning one
 * a second: whatever the upstream answers, an idle connection costs it about
 * one request a second, never a tight loop. The settle poll that follows an
 * answer with new events does not draw: there is one per such answer, so it
 * cannot loop, and drawing for it would hold a busy conversation's next
 * events back by up to a second once two came in a second.
 */
const CREDITS = 3

/** Where a poller is: which of its callbacks or timers it waits for. */
const enum Phase { New, Gate, Waiting, Paused, Polling, Stopped }

/** Stands for the call while poll() has not returned it yet. */
const STARTING: PollCall = { cancel: () => {} }

/** Runs a poller's next step (module functions, so that no closure is made per poller or per poll). */
function step (p: Poller): void { p.next() }
function cutListen (p: Poller): void { p.cut() }
// One turn of the event loop after the timer, so that reads already waiting (an upstream in this very
// process reading the poll) are handled before the welcome goes out.
function heard (p: Poller): void { setImmediate(heardNow, p) }
function heardNow (p: Poller): void { p.heard() }

/**
 * The long-poll loop of one (channel, clientId, cid): what to ask comes from
 * its Timeline; this is the calls, their timers, the credit that keeps an
 * upstream that answers at once from becoming a tight loop, and backoff.
 *
 * It is a state machine driven by callbacks rather than an async loop: an
 * idle client keeps this object and its one upstream call, not a chain of
 * suspended async frames and promises, which matters at ten thousand
 * clients a process. `phase` changes in `enter()` only.
 */
export class Poller extends Timeline implements PollSink, GateWaiter {
  private readonly ctx: PollerContext
  private readonly query: PollQuery
  private readonly sink: PollerSink
  private readonly credits: TokenBucket
  private failures = 0
  private streak: string | undefined
  /** Flow control asked for by the sink: no new poll starts while set. */
  private paused = false
  private listening = false
  private phase: Phase = Phase.New
  /** The upstream call in flight. */
  private call: PollCall | undefined
  private timer: NodeJS.Timeout | undefined
  private arrival: NodeJS.Timeout | undefined
  /** Polls answered, for tests and metrics. */
  polls = 0

  /** See Timeline for `start` and `before`. */
  constructor (ctx: PollerContext, query: PollQuery, sink: PollerSink, start: CursorPosition, before: CursorPosition[] = []) {
    const now = (ctx.now ?? Date.now)()
    super(ctx.traits, start, before, now)
    this.ctx = ctx
    this.query = query
    this.sink = sink
    this.credits = new TokenBucket(1, CREDITS, now)
  }

  get isPaused (): boolean { return this.paused }
  get stopped (): boolean { return this.phase === Phase.Stopped }

  start (): void {
    if (this.phase !== Phase.New) return
    if (this.ctx.gate !== undefined) {
      this.enter(Phase.Gate)
      this.ctx.gate.enter(this)
    } else {
      this.next()
    }
  }

  /** The gate lets this poller's first poll go. */
  admitted (): void {
    if (this.phase === Phase.Gate) this.next()
  }

  stop (): void {
    if (this.phase === Phase.Gate) this.ctx.gate?.leave(this)
    this.enter(Phase.Stopped)
    clearTimeout(this.arrival)
    const call = this.call
    this.call = undefined
    call?.cancel()
  }

  /** Flow control: no new poll starts until resume(); the upstream keeps the events meanwhile. */
  pause (): void { this.paused = true }
  resume (): void {
    this.paused = false
    if (this.phase === Phase.Paused) this.next()
  }

  /** Starts the next poll, or waits for what must come first (resume, the settle time, credit). */
  next (): void {
    if (this.phase === Phase.Stopped || this.call !== undefined) return
    if (this.paused) {
      this.enter(Phase.Paused)
      return
    }
    const now = this.clock()
    const from = this.plan(now)
    const wait = Math.max(this.credits.waitMs(now), this.settleWait)
    if (wait > 0) {
      this.enter(Phase.Waiting, wait)
      return
    }
    this.enter(Phase.Polling)
    this.askedTs = this.traits.tsFor(from)
    this.startedAt = now
    if (this.ask === Ask.Listen && this.recheckAt !== undefined) {
      // A held poll cannot see an event stored now with an earlier stamp: cut it when the re-read is due.
      this.timer = setTimeout(cutListen, this.recheckAt - now, this)
    }
    // The upstream may end the call before poll() returns (a dispatcher already closed fails at once).
    this.call = STARTING
    const call = this.ctx.upstream.poll(this.query, this.askedTs, this)
    if (this.call === STARTING) this.call = call
  }

  /** The one place the phase changes; the phase's timer (a wait, or the cut of a held poll) goes with it. */
  private enter (phase: Phase, waitMs?: number): void {
    clearTimeout(this.timer)
    this.timer = waitMs === undefined ? undefined : setTimeout(step, waitMs, this)
    this.phase = phase
  }

  /** The re-read is due while a long poll is held: end that poll and re-read. */
  cut (): void {
    this.timer = undefined
    if (this.phase !== Phase.Polling || this.ask !== Ask.Listen || this.call === undefined) return
    const call = this.call
    this.call = undefined
    call.cancel()
    this.next()
  }

  /**
   * The first poll is written: once it has had the time to arrive (a round
   * trip's worth), the upstream knows the connection, and a server that
   * starts a connection's events at its first poll has them from then on.
   */
  pollSent (): void {
    if (this.listening) return
    this.listening = true
    this.arrival = setTimeout(heard, this.traits.arrivalMs, this)
  }

  heard (): void {
    this.arrival = undefined
    if (this.phase !== Phase.Stopped) this.sink.onListening?.()
  }

  pollAnswered (elements: Array<Record<string, unknown>>): void {
    if (this.phase !== Phase.Polling) return
    this.call = undefined
    clearTimeout(this.timer)
    this.timer = undefined
    this.polls++
    this.recovered()
    this.traits.accepted()
    // An answer means the poll was received, even where the request's sending was not reported.
    if (!this.listening || this.arrival !== undefined) {
      clearTimeout(this.arrival)
      this.listening = true
      this.heard()
    }
    try {
      const now = this.clock()
      const fresh = this.take(elements, now)
      if (fresh.length > 0) this.sink.onEvents(fresh)
      else if (this.ask !== Ask.Settle) this.spendIfQuick(now)
    } catch (err) {
      this.sink.log.warn({ err }, 'an upstream answer could not be handled')
    }
    // The next poll starts once the caller's stack has unwound (undici's, here).
    if (this.phase === Phase.Polling) process.nextTick(step, this)
  }

  pollFailed (err: BridgeError): void {
    if (this.phase !== Phase.Polling) return
    this.call = undefined
    if (this.arrival !== undefined) {
      // Failed before it could count as arrived: the upstream may never have seen it (a proxy's 503).
      clearTimeout(this.arrival)
      this.arrival = undefined
      this.listening = false
    }
    if (isChannelRejected(err)) {
      this.enter(Phase.Stopped)
      this.sink.onFatal(err)
      return
    }
    this.enter(Phase.Waiting, this.failed(err))
  }

  protected started (outcome: StartOutcome): void { this.sink.onStart?.(outcome) }

  private clock (): number { return (this.ctx.now ?? Date.now)() }

  /** A poll that came back at once with nothing new (or failed at once) costs a credit. */
  private spendIfQuick (now: number): void {
    if (now - this.startedAt < QUICK_MS) this.credits.spend(now)
  }

  /** Counts and logs a failed poll; returns how long to wait before the next. */
  private failed (e: BridgeError): number {
    this.failures++
    const signature = `${e.code}:${String(e.details?.status ?? '')}`
    if (this.ctx.streak !== undefined) {
      this.ctx.streak.failure(signature, `upstream poll failed: ${e.message}`, { code: e.code, status: e.details?.status })
    } else if (signature !== this.streak) {
      this.streak = signature
      this.sink.log.warn({ code: e.code, status: e.details?.status, failures: this.failures }, `upstream poll failed: ${e.message}`)
    }
    // The position is where it was: the next poll asks the same again, by time. A failure that came
    // back at once draws on the same credit as an empty answer, so no answer makes a tight loop.
    const now = this.clock()
    this.spendIfQuick(now)
    let delay = Math.max(this.credits.waitMs(now), backoffDelay(this.failures - 1, this.ctx.backoff, this.ctx.random))
    const retryAfter = e.details?.retryAfterMs
    if (typeof retryAfter === 'number') delay = Math.max(delay, Math.min(retryAfter, this.ctx.backoff.maxMs))
    return delay
  }

  private recovered (): void {
    if (this.failures > 0) {
      if (this.ctx.streak !== undefined) this.ctx.streak.success()
      else this.sink.log.info({ failures: this.failures }, 'upstream poll recovered')
    }
    this.failures = 0
    this.streak = undefined
  }
}

export interface PollerContextsOptions {
  apis: Map<string, PollUpstream & { traits: ChannelTraits }>
  backoff: Backoff
  gate?: PollGate | undefined
  /** The log of a channel's failure streak. */
  channelLog: (channel: string) => Log
}

/**
 * The context of each channel's pollers, made on first use and shared by
 * them all, whoever runs them (a connection's feed, a cluster's lease
 * owner): an upstream outage is one failure streak, however many pollers
 * see it.
 */
export class PollerContexts {
  private readonly o: PollerContextsOptions
  private readonly byChannel = new Map<string, PollerContext>()

  constructor (o: PollerContextsOptions) { this.o = o }

  of (channel: string): PollerContext {
    let ctx = this.byChannel.get(channel)
    if (ctx === undefined) {
      const upstream = this.o.apis.get(channel)
      if (upstream === undefined) throw new Error(`no channel "${channel}"`)
      ctx = { upstream, traits: upstream.traits, backoff: this.o.backoff, gate: this.o.gate, streak: new StreakLog(this.o.channelLog(channel)) }
      this.byChannel.set(channel, ctx)
    }
    return ctx
  }
}
