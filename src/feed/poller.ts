import { backoffDelay } from '../lib/backoff.js'
import type { CursorPosition } from './cursor.js'
import { EventWindow, UPSTREAM_PAGE, parseAnswer, type FeedEvent, type PolledEvent } from './event.js'
import { isChannelRejected, type PollCall, type PollQuery, type PollSink, type PollUpstream } from '../upstream/chat-api.js'
import type { ChannelTraits } from '../upstream/traits.js'
import type { BridgeError } from '../socket/errors.js'
import type { GateWaiter, PollGate } from './poll-gate.js'
import type { StreakLog } from './streak-log.js'
import type { Log } from '../lib/log.js'

/** What every poller of a channel shares. */
export interface PollerContext {
  /** Where the long polls go: the channel's ChatApi. */
  upstream: PollUpstream
  /** What is known of the channel's upstream: its `ts` bound, its timestamps, its hold. */
  traits: ChannelTraits
  backoffBaseMs: number
  backoffMaxMs: number
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
  onStart?: ((outcome: { resumed: boolean, gap?: string }) => void) | undefined
  readonly log: Log
}

/**
 * After an answer with events of upstream time T arrives, the poll that asks
 * again from T waits until T's timestamp step (a millisecond, or a second
 * where the upstream keeps whole seconds) is over upstream, plus this much:
 * then every event stamped within it exists, and an answer holding nothing
 * new proves it complete, so the next poll can ask from the step after and
 * be held.
 */
const SETTLE_MS = 2
/**
 * Polls that bring nothing new and come back at once (a server that does not
 * hold, an inclusive bound, a re-read) draw on this many credits, earning one
 * a second: whatever the upstream answers, an idle connection costs it about
 * one request a second, never a tight loop.
 */
const CREDITS = 3
/** An answer that took this long was held: a long poll's hold is not a loop, even a short one. */
const QUICK_MS = 400

/** The least gap between the Date header and event stamps taken for another zone (zones are quarter hours apart). */
const ZONE_GAP_MS = 10 * 60_000

/** Where a poller is: which of its callbacks or timers it waits for. */
const enum Phase { New, Gate, Waiting, Paused, Polling, Stopped }

/** What a poll asks for. */
const enum Ask {
  /** The events of the newest timestamp step again, once it is over: is it complete? */
  Settle,
  /** Recent events again: has one been stored since with an earlier stamp? */
  Recheck,
  /** Whatever comes after everything delivered: the long poll proper. */
  Listen
}

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
 * The long-poll loop of one (channel, clientId, cid). It asks only by time,
 * never on the upstream's server-side cursor (whose scope, client or
 * connection, is not documented, so two tabs could take events from each
 * other), and from upstream timestamps only, never from our clock. What an
 * answer brings again (an inclusive bound, a re-read, an event without a
 * time that the server returns every time) is recognised by its content and
 * dropped, so nothing is delivered twice; events stored later than stamped
 * are found by re-reading recent answers for a while.
 *
 * It is a state machine driven by callbacks rather than an async loop: an
 * idle client keeps this object and its one upstream call, not a chain of
 * suspended async frames and promises, which matters at ten thousand
 * clients a process.
 */
export class Poller implements PollSink, GateWaiter {
  private readonly ctx: PollerContext
  private readonly query: PollQuery
  private readonly sink: PollerSink
  private readonly seen = new EventWindow()
  /** The newest upstream time delivered, or where the stream starts before any event. */
  private top: number
  /** `top` is the stamp of a delivered event (not only a starting time). */
  private atEvent = false
  /** Every event of top's timestamp step has been seen. */
  private settled: boolean
  private receivedAt = -Infinity
  /** The earliest stamp delivered since the last re-read, and when the next re-read is due. */
  private floor: number | undefined
  private recheckAt: number | undefined
  private lastFreshAt = 0
  private resumeHash: string | undefined
  /** A starting time taken from the upstream's Date header, not its stamps: our time then, to correct it by. */
  private provisional: number | undefined
  private credits = CREDITS
  private creditsAt = 0
  private failures = 0
  private streak: string | undefined
  private paused = false
  private listening = false
  private phase: Phase = Phase.New
  /** The upstream call in flight, and what it asked. */
  private call: PollCall | undefined
  private ask: Ask = Ask.Listen
  private askedTs = 0
  private startedAt = 0
  private timer: NodeJS.Timeout | undefined
  private arrival: NodeJS.Timeout | undefined
  /** Polls answered, for tests and metrics. */
  polls = 0

  /**
   * Follows the events of `query` from `start`: with a hash, right after
   * that delivered event (a resume); with an empty hash, everything stamped
   * from that time on (a new connection). `before` are events that came
   * before the start although stamped at or after it (the client's other
   * connections had them before this one was welcomed, in the same
   * millisecond): they are not this connection's.
   */
  constructor (ctx: PollerContext, query: PollQuery, sink: PollerSink, start: CursorPosition, before: CursorPosition[] = []) {
    this.ctx = ctx
    this.query = query
    this.sink = sink
    this.top = start.ts
    for (const e of before) this.seen.add(e as PolledEvent)
    if (start.hash !== '') {
      // The first poll asks from the event's own time, to find it and what followed it there.
      this.resumeHash = start.hash
      this.settled = false
    } else {
      this.settled = true
      if (!ctx.traits.stampClock) this.provisional = (ctx.now ?? Date.now)()
    }
  }

  /** The upstream time of the newest event delivered; undefined before the first. */
  get position (): number | undefined { return this.atEvent ? this.top : undefined }
  get isPaused (): boolean { return this.paused }
  get stopped (): boolean { return this.phase === Phase.Stopped }

  start (): void {
    if (this.phase !== Phase.New) return
    this.creditsAt = this.clock()
    if (this.ctx.gate !== undefined) {
      this.phase = Phase.Gate
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
    this.phase = Phase.Stopped
    clearTimeout(this.timer)
    clearTimeout(this.arrival)
    this.timer = undefined
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
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.paused) {
      this.phase = Phase.Paused
      return
    }
    const now = this.clock()
    const traits = this.ctx.traits
    let from: number
    let wait = this.creditWait(now)
    if (!this.settled) {
      this.ask = Ask.Settle
      from = this.top
      wait = Math.max(wait, this.receivedAt + traits.granularity + SETTLE_MS - now)
    } else if (this.recheckAt !== undefined && this.recheckAt <= now) {
      this.ask = Ask.Recheck
      from = Math.max(0, (this.floor ?? this.top) - traits.lateStampMs)
    } else {
      this.ask = Ask.Listen
      if (this.provisional !== undefined && !this.atEvent) this.correctStart()
      from = this.atEvent ? this.top + traits.granularity : this.top
    }
    if (wait > 0) {
      this.phase = Phase.Waiting
      this.timer = setTimeout(step, wait, this)
      return
    }
    this.phase = Phase.Polling
    this.askedTs = traits.tsFor(from)
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
    this.arrival = setTimeout(heard, this.ctx.traits.arrivalMs, this)
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
    this.ctx.traits.accepted()
    // An answer means the poll was received, even where the request's sending was not reported.
    if (!this.listening || this.arrival !== undefined) {
      clearTimeout(this.arrival)
      this.listening = true
      this.heard()
    }
    try {
      this.take(elements)
    } catch (err) {
      this.sink.log.warn({ err }, 'an upstream answer could not be handled')
    }
    // The next poll starts once the caller's stack has unwound (undici's, here).
    if (this.phase === Phase.Polling) process.nextTick(step, this)
  }

  pollFailed (err: BridgeError): void {
    if (this.phase !== Phase.Polling) return
    this.call = undefined
    clearTimeout(this.timer)
    if (this.arrival !== undefined) {
      // Failed before it could count as arrived: the upstream may never have seen it (a proxy's 503).
      clearTimeout(this.arrival)
      this.arrival = undefined
      this.listening = false
    }
    if (isChannelRejected(err)) {
      this.phase = Phase.Stopped
      this.timer = undefined
      this.sink.onFatal(err)
      return
    }
    this.phase = Phase.Waiting
    this.timer = setTimeout(step, this.failed(err), this)
  }

  private clock (): number { return (this.ctx.now ?? Date.now)() }

  /**
   * The start came from the Date header, and the upstream's stamps are now
   * known: should they run a zone behind it (a zone-less local time), the
   * start moves back to what the stamps say, so that nothing is missed. It
   * never moves forward.
   */
  private correctStart (): void {
    const at = this.ctx.traits.stampTimeAt(this.provisional as number)
    if (at === undefined) return
    this.provisional = undefined
    // Only a zone's worth: old events that a server sent again look "behind" too, and must not pull the start back.
    if (this.top - at >= ZONE_GAP_MS) this.top = at
  }

  /** A poll that came back at once with nothing new (or failed at once) costs a credit. */
  private spendIfQuick (now: number): void {
    if (now - this.startedAt < QUICK_MS) this.credits -= 1
  }

  /** How long until a credit is free for the next poll. */
  private creditWait (now: number): number {
    this.credits = Math.min(CREDITS, this.credits + (now - this.creditsAt) / 1000)
    this.creditsAt = now
    return this.credits >= 1 ? 0 : Math.ceil((1 - this.credits) * 1000)
  }

  /** Delivers what is new in one answer and decides what to ask next. */
  private take (elements: Array<Record<string, unknown>>): void {
    const now = this.clock()
    const traits = this.ctx.traits
    const events = parseAnswer(elements, this.top)
    const times: number[] = []
    for (const e of events) if (e.untimed !== true) times.push(e.ts)
    if (times.length < events.length) traits.quirk('untimed_event', { untimed: events.length - times.length })
    traits.stamps(times, now)
    if (this.provisional !== undefined && !this.atEvent) this.correctStart()
    if (this.resumeHash !== undefined) this.skipToResumePoint(events)
    // Older than anything this connection can be owed: before its start, or before what it remembers.
    const oldest = this.atEvent ? this.top - traits.keepMs : this.top - 1 - traits.lateStampMs

    const known: number[] = []
    const fresh: PolledEvent[] = []
    let late = 0
    // Every event stamped up to `top` had been seen when top's step settled: one new there now was stored late.
    const proven = this.settled && this.atEvent ? this.top : undefined
    let stale = 0
    for (const ev of events) {
      if (this.seen.has(ev.hash)) {
        if (ev.untimed !== true) known.push(ev.ts)
        continue
      }
      if (ev.untimed !== true && ev.ts < oldest) {
        // Remembered, so that it is known for old again while it is within the window.
        this.seen.add(ev)
        stale++
        continue
      }
      this.seen.add(ev)
      fresh.push(ev)
      if (ev.untimed === true) continue
      if (proven !== undefined && ev.ts <= proven) late = Math.max(late, proven - ev.ts, now - this.lastFreshAt)
      else if (this.atEvent && ev.ts < this.top) late = Math.max(late, this.top - ev.ts)
      if (!this.atEvent || ev.ts > this.top) this.top = ev.ts
      this.atEvent = true
    }
    if (stale > 0) traits.quirk('stale_answer', { events: stale })
    traits.bound(this.askedTs, known, this.ask === Ask.Listen && this.seen.hasAt(this.askedTs))
    if (late > 0) traits.late(late)

    const full = elements.length >= UPSTREAM_PAGE
    if (fresh.length > 0) {
      this.settled = false
      // After a full page the rest is there already: ask for it at once.
      this.receivedAt = full ? -Infinity : now
      this.lastFreshAt = now
      for (const ev of fresh) if (ev.untimed !== true && (this.floor === undefined || ev.ts < this.floor)) this.floor = ev.ts
      const after = traits.recheckAfter()
      if (after !== undefined && this.floor !== undefined) this.recheckAt = now + after
    } else {
      this.spendIfQuick(now)
      this.settledBy(elements.length, full, now)
    }
    this.seen.prune(Math.max(traits.keepMs, this.floor === undefined ? 0 : this.top - this.floor + traits.granularity))
    if (fresh.length > 0) this.sink.onEvents(fresh)
  }

  /** An answer that brought nothing new: what it proves, by what it asked. */
  private settledBy (length: number, full: boolean, now: number): void {
    const traits = this.ctx.traits
    switch (this.ask) {
      case Ask.Settle:
        // Asked again from T after T's step was over, and nothing new: T is complete. (So is a full page
        // of nothing new: asking by time cannot page through more than a page of one timestamp.)
        this.settled = true
        break
      case Ask.Recheck:
        traits.recheckClean()
        if (traits.lateStampMs > 0 && now - this.lastFreshAt < traits.recheckWindowMs) {
          this.recheckAt = now + 1000
        } else {
          this.recheckAt = undefined
          this.floor = undefined
        }
        break
      case Ask.Listen:
        if (length === 0) traits.empty(now - this.startedAt)
        else if (now - this.startedAt < QUICK_MS && traits.inclusive !== undefined) traits.quirk('stale_answer', { events: length })
        // Once quiet, read the recent events once more, should one have been stored late.
        if (this.floor !== undefined && this.recheckAt === undefined) this.recheckAt = now
        break
    }
    if (full) this.settled = true
  }

  /**
   * The first answer after starting from a delivered event: everything up to
   * and including it was delivered before. When that event is no longer
   * upstream, continuity is lost, and the answer is not replayed.
   */
  private skipToResumePoint (events: PolledEvent[]): void {
    const hash = this.resumeHash
    this.resumeHash = undefined
    const at = events.findIndex((e) => e.hash === hash)
    const skipped = at >= 0 ? events.slice(0, at + 1) : events
    for (const e of skipped) {
      this.seen.add(e)
      if (e.untimed !== true && e.ts > this.top) this.top = e.ts
    }
    this.atEvent = true
    if (at >= 0) this.sink.onStart?.({ resumed: true })
    else this.sink.onStart?.({ resumed: false, gap: 'the event of this cursor is no longer kept upstream' })
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
    let delay = Math.max(this.creditWait(now), backoffDelay(this.failures, this.ctx.backoffBaseMs, this.ctx.backoffMaxMs, this.ctx.random))
    const retryAfter = e.details?.retryAfterMs
    if (typeof retryAfter === 'number') delay = Math.max(delay, Math.min(retryAfter, this.ctx.backoffMaxMs))
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
