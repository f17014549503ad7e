import { backoffDelay } from './backoff.js'
import { eventHash, type CursorPosition } from './cursor.js'
import { eventTime } from './upstream/calls.js'
import { isChannelRejected, type PollCall, type PollQuery, type PollSink, type PollUpstream } from './upstream/client.js'
import type { BridgeError } from './errors.js'
import type { GateWaiter, PollGate } from './poll-gate.js'
import type { StreakLog } from './streak-log.js'

/** One upstream event, serialised once: every socket that gets it gets these bytes. */
export interface FeedEvent { ts: number, hash: string, json: string }

export interface PollLog {
  warn: (obj: object, msg: string) => void
  info: (obj: object, msg: string) => void
}

/** What every poller of a channel shares. */
export interface PollerContext {
  /** Where the long polls go: the channel's ChatApi. */
  upstream: PollUpstream
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
  /** New events, in upstream order, each once. */
  onEvents: (events: FeedEvent[]) => void
  /** The upstream refused the channel token: polling has stopped. */
  onFatal: (err: BridgeError) => void
  /** The outcome of starting from a cursor, known at the first answer. */
  onStart?: ((outcome: { resumed: boolean, gap?: string }) => void) | undefined
  readonly log: PollLog
}

/** The upstream's page size: an answer this long may have more behind it. */
export const UPSTREAM_PAGE = 250
/**
 * After an answer with events of upstream millisecond T arrives, the poll
 * that asks again from T waits until this much time has passed here, so that
 * the upstream's clock is past T and every event stamped T already exists.
 * Then an answer holding nothing new proves T complete, and the next poll can
 * ask from T+1 and be held: one poll per hold time while idle.
 */
const SETTLE_MS = 2

/**
 * The events of one /events answer that carry a usable timestamp, serialised
 * once and in time order (upstream order is time order; a reordered answer
 * is put back in order, stable for equal times).
 */
export function parseAnswer (elements: Array<Record<string, unknown>>): FeedEvent[] {
  const parsed: FeedEvent[] = []
  for (const element of elements) {
    const ts = eventTime(element)
    if (ts === undefined) continue
    const json = JSON.stringify(element)
    parsed.push({ ts, hash: eventHash(json), json })
  }
  return parsed.sort((a, b) => a.ts - b.ts)
}

/** Where a poller is: which of its callbacks or timers it waits for. */
const enum Phase { New, Gate, Waiting, Paused, Polling, Stopped }

/** Stands for the call while poll() has not returned it yet. */
const STARTING: PollCall = { cancel: () => {} }

/** Runs a poller's next step (a module function, so that no closure is made per poller or per poll). */
function step (p: Poller): void { p.next() }

/**
 * The long-poll loop of one (channel, clientId, cid). The position it asks
 * from comes only from upstream timestamps; the inclusive `ts` boundary is
 * de-duplicated by event hash, so nothing is delivered twice.
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
  private lastTs: number | undefined
  /** Hashes of the events delivered at upstream millisecond lastTs. */
  private boundary: Set<string> | undefined
  /** Every event stamped lastTs has been seen: ask from lastTs + 1. */
  private complete = false
  private receivedAt = 0
  /**
   * The last answer was a full page. Asking by time cannot page through more
   * than a page of events that share one millisecond, so the next page comes
   * from the server-side cursor, which the full answer left right after it.
   */
  private nextPage = false
  private resumeHash: string | undefined
  private failures = 0
  private streak: string | undefined
  private paused = false
  private phase: Phase = Phase.New
  /** The upstream call in flight, and the position it asked from. */
  private call: PollCall | undefined
  private askedFrom: number | undefined
  private timer: NodeJS.Timeout | undefined
  /** Polls answered, for tests and metrics. */
  polls = 0

  /**
   * Follows the events of `query`: right after `start` (an upstream event),
   * or with `fromStart` from the connection's beginning (ts 0), or else from
   * the upstream's server-side cursor.
   */
  constructor (ctx: PollerContext, query: PollQuery, sink: PollerSink, start?: CursorPosition, fromStart = false) {
    this.ctx = ctx
    this.query = query
    this.sink = sink
    if (start !== undefined) {
      this.lastTs = start.ts
      this.resumeHash = start.hash
    } else if (fromStart) {
      this.lastTs = 0
    }
  }

  get position (): number | undefined { return this.lastTs }
  get isPaused (): boolean { return this.paused }
  get stopped (): boolean { return this.phase === Phase.Stopped }

  start (): void {
    if (this.phase !== Phase.New) return
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

  /** Starts the next poll, or waits for what must come first (resume, the settle time). */
  next (): void {
    if (this.phase === Phase.Stopped || this.call !== undefined) return
    this.timer = undefined
    if (this.paused) {
      this.phase = Phase.Paused
      return
    }
    const wait = this.settleWait()
    if (wait > 0) {
      this.phase = Phase.Waiting
      this.timer = setTimeout(step, wait, this)
      return
    }
    this.phase = Phase.Polling
    const ts = this.lastTs === undefined || this.nextPage ? undefined : this.complete ? this.lastTs + 1 : this.lastTs
    this.askedFrom = ts
    // The upstream may end the call before poll() returns (a dispatcher already closed fails at once).
    this.call = STARTING
    const call = this.ctx.upstream.poll(this.query, ts, this)
    if (this.call === STARTING) this.call = call
  }

  pollAnswered (elements: Array<Record<string, unknown>>): void {
    if (this.phase !== Phase.Polling) return
    this.call = undefined
    this.polls++
    this.recovered()
    try {
      this.take(elements, this.askedFrom)
    } catch (err) {
      this.sink.log.warn({ err }, 'an upstream answer could not be handled')
    }
    // The next poll starts once the caller's stack has unwound (undici's, here).
    if (this.phase === Phase.Polling) process.nextTick(step, this)
  }

  pollFailed (err: BridgeError): void {
    if (this.phase !== Phase.Polling) return
    this.call = undefined
    if (isChannelRejected(err)) {
      this.phase = Phase.Stopped
      this.sink.onFatal(err)
      return
    }
    this.phase = Phase.Waiting
    this.timer = setTimeout(step, this.failed(err), this)
  }

  private settleWait (): number {
    if (this.complete || this.nextPage || this.lastTs === undefined) return 0
    return this.receivedAt + SETTLE_MS - (this.ctx.now ?? Date.now)()
  }

  /** Delivers what is new in one answer and moves the position. */
  private take (elements: Array<Record<string, unknown>>, askedFrom: number | undefined): void {
    const fresh: FeedEvent[] = []
    const parsed = parseAnswer(elements)
    if (parsed.length < elements.length) this.sink.log.warn({ untimed: elements.length - parsed.length }, 'upstream events without a valid timestamp were dropped')

    if (this.resumeHash !== undefined) this.skipToResumePoint(parsed)

    for (const ev of parsed) {
      if (this.lastTs !== undefined && ev.ts < this.lastTs) continue
      if (ev.ts === this.lastTs) {
        if (this.boundary?.has(ev.hash) === true) continue
      } else {
        this.lastTs = ev.ts
        this.boundary = undefined
      }
      ;(this.boundary ??= new Set()).add(ev.hash)
      fresh.push(ev)
    }

    if (fresh.length > 0) {
      this.complete = false
      this.receivedAt = (this.ctx.now ?? Date.now)()
    } else if (askedFrom !== undefined && askedFrom === this.lastTs) {
      // Asked again from T after the settle time and nothing new: T is complete.
      this.complete = true
    }
    this.nextPage = elements.length >= UPSTREAM_PAGE
    if (fresh.length > 0) this.sink.onEvents(fresh)
  }

  /**
   * The first answer after starting from a cursor: everything up to and
   * including the cursor's event was delivered before. When that event is
   * no longer upstream, continuity is lost, and the answer is not replayed.
   */
  private skipToResumePoint (parsed: FeedEvent[]): void {
    const hash = this.resumeHash
    this.resumeHash = undefined
    const at = parsed.findIndex((e) => e.ts === this.lastTs && e.hash === hash)
    if (at >= 0) {
      for (const e of parsed.slice(0, at + 1)) if (e.ts === this.lastTs) (this.boundary ??= new Set()).add(e.hash)
      this.sink.onStart?.({ resumed: true })
      return
    }
    for (const e of parsed) {
      if (this.lastTs === undefined || e.ts > this.lastTs) { this.lastTs = e.ts; this.boundary = undefined }
      if (e.ts === this.lastTs) (this.boundary ??= new Set()).add(e.hash)
    }
    this.sink.onStart?.({ resumed: false, gap: 'the event of this cursor is no longer kept upstream' })
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
    // After a failure the server-side cursor may have moved past events we never got: ask by time.
    // Before any event there is no upstream time to ask from but the connection's start (ts 0; the cid
    // scopes it): a connection id the upstream knew before may then bring back older events, which is
    // better than losing the ones the failed answer carried.
    if (this.lastTs === undefined) this.lastTs = 0
    this.complete = false
    this.nextPage = false
    let delay = backoffDelay(this.failures, this.ctx.backoffBaseMs, this.ctx.backoffMaxMs, this.ctx.random)
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
