import { backoffDelay } from './backoff.js'
import { eventHash, type CursorPosition } from './cursor.js'
import { eventTime } from './upstream/calls.js'
import { isChannelRejected } from './upstream/client.js'
import { BridgeError, ErrorCode } from './errors.js'
import type { PollGate } from './poll-gate.js'
import type { StreakLog } from './streak-log.js'

/** One upstream event, serialised once: every socket that gets it gets these bytes. */
export interface FeedEvent { ts: number, hash: string, json: string }

export interface PollLog {
  warn: (obj: object, msg: string) => void
  info: (obj: object, msg: string) => void
}

export interface PollerOptions {
  /** One upstream /events call from `ts` (inclusive), or from the server-side cursor when undefined. */
  fetch: (ts: number | undefined, signal: AbortSignal) => Promise<Array<Record<string, unknown>>>
  onEvents: (events: FeedEvent[]) => void
  /** The upstream refused the channel token: polling has stopped. */
  onFatal: (err: BridgeError) => void
  /** The outcome of starting from a cursor, known at the first answer. */
  onStart?: (outcome: { resumed: boolean, gap?: string }) => void
  log: PollLog
  backoffBaseMs: number
  backoffMaxMs: number
  start?: CursorPosition | undefined
  /** With no `start`: ask from the connection's beginning (ts 0) rather than from the server-side cursor. */
  fromStart?: boolean | undefined
  /** Shared by the pollers of a channel, so an outage is logged once, not once per poller. */
  streak?: StreakLog | undefined
  /** Paces the first poll of new pollers, so a reconnect storm is not a storm upstream. */
  gate?: PollGate | undefined
  now?: () => number
  random?: () => number
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

/**
 * The long-poll loop of one (channel, clientId, cid). The position it asks
 * from comes only from upstream timestamps; the inclusive `ts` boundary is
 * de-duplicated by event hash, so nothing is delivered twice.
 */
export class Poller {
  private readonly o: PollerOptions
  private readonly abort = new AbortController()
  private readonly now: () => number
  private lastTs: number | undefined
  /** Hashes of the events delivered at upstream millisecond lastTs. */
  private boundary = new Set<string>()
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
  private pausedUntil: (() => void) | undefined
  private paused = false
  private running = false
  /** Polls answered, for tests and metrics. */
  polls = 0

  constructor (opts: PollerOptions) {
    this.o = opts
    this.now = opts.now ?? Date.now
    if (opts.start !== undefined) {
      this.lastTs = opts.start.ts
      this.resumeHash = opts.start.hash
    } else if (opts.fromStart === true) {
      this.lastTs = 0
    }
  }

  get position (): number | undefined { return this.lastTs }
  get isPaused (): boolean { return this.paused }
  get stopped (): boolean { return this.abort.signal.aborted }

  start (): void {
    if (this.running) return
    this.running = true
    this.loop().catch((err: unknown) => {
      this.o.log.warn({ err }, 'poll loop ended by an unexpected error')
    })
  }

  stop (): void {
    this.abort.abort()
    this.release()
  }

  /** Flow control: no new poll starts until resume(); the upstream keeps the events meanwhile. */
  pause (): void { this.paused = true }
  resume (): void {
    this.paused = false
    this.release()
  }

  private release (): void {
    const r = this.pausedUntil
    this.pausedUntil = undefined
    r?.()
  }

  private async loop (): Promise<void> {
    const signal = this.abort.signal
    if (this.o.gate !== undefined) await this.o.gate.admit(signal)
    while (!signal.aborted) {
      if (this.paused) {
        await new Promise<void>((resolve) => { this.pausedUntil = resolve })
        continue
      }
      await this.settle()
      if (signal.aborted) break
      const ts = this.lastTs === undefined || this.nextPage ? undefined : this.complete ? this.lastTs + 1 : this.lastTs
      let elements: Array<Record<string, unknown>>
      try {
        elements = await this.o.fetch(ts, signal)
      } catch (err) {
        if (signal.aborted) break
        if (isChannelRejected(err)) {
          this.abort.abort()
          this.o.onFatal(err as BridgeError)
          break
        }
        await this.failed(err)
        continue
      }
      this.polls++
      this.recovered()
      this.take(elements, ts)
    }
  }

  private async settle (): Promise<void> {
    if (this.complete || this.nextPage || this.lastTs === undefined) return
    const wait = this.receivedAt + SETTLE_MS - this.now()
    if (wait > 0) await this.sleep(wait)
  }

  /** Delivers what is new in one answer and moves the position. */
  private take (elements: Array<Record<string, unknown>>, askedFrom: number | undefined): void {
    const fresh: FeedEvent[] = []
    const parsed = parseAnswer(elements)
    if (parsed.length < elements.length) this.o.log.warn({ untimed: elements.length - parsed.length }, 'upstream events without a valid timestamp were dropped')

    if (this.resumeHash !== undefined) this.skipToResumePoint(parsed)

    for (const ev of parsed) {
      if (this.lastTs !== undefined && ev.ts < this.lastTs) continue
      if (ev.ts === this.lastTs) {
        if (this.boundary.has(ev.hash)) continue
      } else {
        this.lastTs = ev.ts
        this.boundary = new Set()
      }
      this.boundary.add(ev.hash)
      fresh.push(ev)
    }

    if (fresh.length > 0) {
      this.complete = false
      this.receivedAt = this.now()
    } else if (askedFrom !== undefined && askedFrom === this.lastTs) {
      // Asked again from T after the settle time and nothing new: T is complete.
      this.complete = true
    }
    this.nextPage = elements.length >= UPSTREAM_PAGE
    if (fresh.length > 0) this.o.onEvents(fresh)
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
      for (const e of parsed.slice(0, at + 1)) if (e.ts === this.lastTs) this.boundary.add(e.hash)
      this.o.onStart?.({ resumed: true })
      return
    }
    for (const e of parsed) {
      if (this.lastTs === undefined || e.ts > this.lastTs) { this.lastTs = e.ts; this.boundary = new Set() }
      if (e.ts === this.lastTs) this.boundary.add(e.hash)
    }
    this.o.onStart?.({ resumed: false, gap: 'the event of this cursor is no longer kept upstream' })
  }

  private async failed (err: unknown): Promise<void> {
    this.failures++
    const e = err instanceof BridgeError ? err : new BridgeError(ErrorCode.UPSTREAM_UNAVAILABLE, String(err))
    const signature = `${e.code}:${String(e.details?.status ?? '')}`
    if (this.o.streak !== undefined) {
      this.o.streak.failure(signature, `upstream poll failed: ${e.message}`, { code: e.code, status: e.details?.status })
    } else if (signature !== this.streak) {
      this.streak = signature
      this.o.log.warn({ code: e.code, status: e.details?.status, failures: this.failures }, `upstream poll failed: ${e.message}`)
    }
    // After a failure the server-side cursor may have moved past events we never got: ask by time.
    // Before any event there is no upstream time to ask from but the connection's start (ts 0; the cid
    // scopes it): a connection id the upstream knew before may then bring back older events, which is
    // better than losing the ones the failed answer carried.
    if (this.lastTs === undefined) this.lastTs = 0
    this.complete = false
    this.nextPage = false
    let delay = backoffDelay(this.failures, this.o.backoffBaseMs, this.o.backoffMaxMs, this.o.random)
    const retryAfter = e.details?.retryAfterMs
    if (typeof retryAfter === 'number') delay = Math.max(delay, Math.min(retryAfter, this.o.backoffMaxMs))
    await this.sleep(delay)
  }

  private recovered (): void {
    if (this.failures > 0) {
      if (this.o.streak !== undefined) this.o.streak.success()
      else this.o.log.info({ failures: this.failures }, 'upstream poll recovered')
    }
    this.failures = 0
    this.streak = undefined
  }

  private async sleep (ms: number): Promise<void> {
    const signal = this.abort.signal
    if (signal.aborted) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms)
      function done (): void {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        resolve()
      }
      signal.addEventListener('abort', done, { once: true })
    })
  }
}
