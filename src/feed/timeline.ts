import { CURSOR_GONE } from './catch-up.js'
import type { CursorPosition } from './cursor.js'
import { EventWindow, UPSTREAM_PAGE, parseAnswer, type PolledEvent } from './event.js'
import type { ChannelTraits } from '../upstream/traits.js'

/**
 * After an answer with events of upstream time T arrives, the poll that asks
 * again from T waits until T's timestamp step (a millisecond, or a second
 * where the upstream keeps whole seconds) is over upstream, plus this much:
 * then every event stamped within it exists, and an answer holding nothing
 * new proves it complete, so the next poll can ask from the step after and
 * be held.
 */
const SETTLE_MS = 2
/** An answer that took this long was held: a long poll's hold is not a loop, even a short one. */
export const QUICK_MS = 400
/** The least gap between the Date header and event stamps taken for another zone (zones are quarter hours apart). */
const ZONE_GAP_MS = 10 * 60_000

/** What a poll asks for. */
export const enum Ask {
  /** The events of the newest timestamp step again, once it is over: is it complete? */
  Settle,
  /** Recent events again: has one been stored since with an earlier stamp? */
  Recheck,
  /** Whatever comes after everything delivered: the long poll proper. */
  Listen
}

export type StartOutcome = { resumed: boolean, gap?: string }

/**
 * Where one connection is in the upstream's stream, and what the answers
 * mean: which events are new, what time to ask from next, and when an
 * answer proves a timestamp step complete. It asks only by time, from
 * upstream timestamps only, never our clock; what an answer brings again
 * (an inclusive bound, a re-read, an event without a time that the server
 * returns every time) is recognised by its content, so nothing is taken
 * twice; events stored later than stamped are found by re-reading recent
 * answers for a while. Poller, its subclass, is the loop that makes the
 * calls (one object per connection, not two: an idle client costs this).
 */
export abstract class Timeline {
  protected readonly traits: ChannelTraits
  private readonly seen = new EventWindow()
  /** The newest upstream time taken, or where the stream starts before any event. */
  private top: number
  /** `top` is the stamp of a taken event (not only a starting time). */
  private atEvent = false
  /** Every event of top's timestamp step has been seen. */
  private settled: boolean
  private receivedAt = -Infinity
  /** The earliest stamp taken since the last re-read, and when the next re-read is due. */
  private floor: number | undefined
  protected recheckAt: number | undefined
  private lastFreshAt = 0
  private resumeHash: string | undefined
  /** The `before` events not yet met in an answer: the stream is past each one it meets. */
  private others: Set<string> | undefined
  /** A starting time taken from the upstream's Date header, not its stamps: our time then, to correct it by. */
  private provisional: number | undefined
  /** What the poll in flight (or the last one) asked, from which upstream time (as sent), and when. */
  protected ask: Ask = Ask.Listen
  protected askedTs = 0
  protected startedAt = 0
  protected settleWait = 0

  /**
   * Follows the stream from `start`: with a hash, right after that taken
   * event (a resume); with an empty hash, everything stamped from that time
   * on (a new connection). `before` are events that came before the start
   * although stamped at or after it (the client's other connections had
   * them before this one was welcomed, in the same millisecond): they are
   * not this connection's.
   */
  constructor (traits: ChannelTraits, start: CursorPosition, before: CursorPosition[], now: number) {
    this.traits = traits
    this.top = start.ts
    for (const e of before) this.seen.add(e as PolledEvent)
    if (before.length > 0) this.others = new Set(before.map((e) => e.hash))
    if (start.hash !== '') {
      // The first poll asks from the event's own time, to find it and what followed it there.
      this.resumeHash = start.hash
      this.settled = false
    } else {
      this.settled = true
      if (!traits.stampClock) this.provisional = now
    }
  }

  /** The upstream time of the newest event taken; undefined before the first. */
  get position (): number | undefined { return this.atEvent ? this.top : undefined }

  /** The outcome of starting after a taken event, known at the first answer. */
  protected abstract started (outcome: StartOutcome): void

  /**
   * Chooses what the next poll asks (`ask`) and returns the upstream time it
   * asks from; `settleWait` is how long it must wait first for a settle.
   */
  protected plan (now: number): number {
    const traits = this.traits
    this.settleWait = 0
    if (!this.settled) {
      this.ask = Ask.Settle
      this.settleWait = this.receivedAt + traits.granularity + SETTLE_MS - now
      return this.top
    }
    if (this.recheckAt !== undefined && this.recheckAt <= now) {
      this.ask = Ask.Recheck
      return Math.max(0, (this.floor ?? this.top) - traits.lateStampMs)
    }
    this.ask = Ask.Listen
    if (this.provisional !== undefined && !this.atEvent) this.correctStart()
    return this.atEvent ? this.top + traits.granularity : this.top
  }

  /**
   * The start came from the Date header, and the upstream's stamps are now
   * known: should they run a zone behind it (a zone-less local time), the
   * start moves back to what the stamps say, so that nothing is missed. It
   * never moves forward.
   */
  protected correctStart (): void {
    const at = this.traits.stampTimeAt(this.provisional as number)
    if (at === undefined) return
    this.provisional = undefined
    // Only a zone's worth: old events that a server sent again look "behind" too, and must not pull the start back.
    if (this.top - at >= ZONE_GAP_MS) this.top = at
  }

  /** What is new in one answer, each event once; notes what the answer proves for the next ask. */
  protected take (elements: Array<Record<string, unknown>>, now: number): PolledEvent[] {
    const traits = this.traits
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
    let passed = false
    for (const ev of events) {
      if (this.seen.has(ev.hash)) {
        if (ev.untimed !== true) known.push(ev.ts)
        // An event of before this connection began: not its own, but it is past it. Without moving on, every
        // poll would ask from before it again, and be answered at once with it, until something new came.
        if (this.others?.delete(ev.hash) === true && ev.untimed !== true && (!this.atEvent || ev.ts > this.top)) {
          this.top = ev.ts
          this.atEvent = true
          passed = true
        }
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
    } else if (passed) {
      // Past another connection's event, as after one of its own: its step must be proven complete first.
      this.settled = false
      this.receivedAt = full ? -Infinity : now
    } else {
      this.settledBy(elements.length, full, full && !known.some((ts) => ts < this.top), now)
    }
    this.seen.prune(Math.max(traits.keepMs, this.floor === undefined ? 0 : this.top - this.floor + traits.granularity))
    return fresh
  }

  /**
   * An answer that brought nothing new: what it proves, by what it asked.
   * `onePage`: it is a full page that holds nothing stamped before `top`.
   */
  private settledBy (length: number, full: boolean, onePage: boolean, now: number): void {
    const traits = this.traits
    switch (this.ask) {
      case Ask.Settle:
        // Asked again from T after T's step was over, and nothing new: T is complete. (So is a full page
        // of nothing new from T on: asking by time cannot page through more than a page of one timestamp.)
        // But a full page that began before T (asked from T - 1 while the bound was not known) may end within
        // T: it proves nothing. It showed the bound, inclusive, so the next ask begins at T itself; where the
        // bound is still not known, asking again would bring the same page, and T is taken as complete.
        if (!full || onePage || traits.inclusive !== true) this.settled = true
        return
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
        // Known events back at once are stale only when the poll asked past every one of them: one asked from the
        // newest event's own time (a step early while the bound was not known yet) is answered with it by design.
        else if (now - this.startedAt < QUICK_MS && traits.inclusive !== undefined && this.askedTs > this.top) traits.quirk('stale_answer', { events: length })
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
    if (at >= 0) this.started({ resumed: true })
    else this.started({ resumed: false, gap: CURSOR_GONE })
  }

}
