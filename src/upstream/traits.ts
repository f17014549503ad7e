/**
 * What the bridge has learned of one channel's upstream while talking to it.
 * The Chat API documentation leaves open how `ts` bounds a poll, how precise
 * timestamps are, whether an empty poll is held, whether an event can be
 * stamped earlier than it is stored, and how far the upstream's clock is from
 * ours. Every poller of the channel (a local one, a cluster owner, a catch-up
 * read) asks here and reports here, so a finding is made once, logged once,
 * and counted in the metrics rather than logged per poll.
 */

export interface TraitsLog {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  /** The fields bound to the logger (pino's); the bridge binds `channel`, which the refusal names. */
  bindings?: () => Record<string, unknown>
}

/** Odd things an upstream does that the bridge copes with; each is counted, and logged the first time. */
export type Quirk = 'untimed_event' | 'late_stamp' | 'quick_empty' | 'stale_answer' | 'clock_mismatch'

export interface ChannelTraitsOptions {
  log?: TraitsLog | undefined
  /** Told of every quirk seen (for /metrics). */
  onQuirk?: ((quirk: Quirk) => void) | undefined
  now?: () => number
}

/** How long an empty answer must have been held to count as a long poll. */
const HELD_MS = 1000
/** How long a refused channel refuses new sockets before a new one may try the token again. */
const REFUSED_MS = 60_000
/** Rechecks that found nothing late, channel-wide, before the bridge stops making them after every burst. */
const CLEAN_RECHECKS = 20
/**
 * How far back from the newest delivered event the bridge remembers what it
 * delivered; an event stamped earlier than that, new to the window, is taken
 * for an old one that a server returned again (one that ignores `ts`), not
 * for a new one.
 */
const KEEP_MS = 30_000
/** When a recent answer is read again to find events stored later with an earlier stamp. */
const DEFAULT_RECHECK_MS = 1500

export class ChannelTraits {
  private readonly o: ChannelTraitsOptions
  /** `ts` returns events at that very millisecond (true), only after it (false), or not known yet. */
  private tsInclusive: boolean | undefined
  private exclusiveHints = 0
  /** Whole seconds until a timestamp with a millisecond part is seen. */
  private precisionMs = 1000
  /** Whether an empty poll is held; undefined until an empty answer is seen. */
  private holding: boolean | undefined
  /** The largest lag seen between an event's stamp and a later-stored neighbour's; 0 when none was seen. */
  private lateMs = 0
  private cleanRechecks = 0
  private readonly quirksLogged = new Set<Quirk>()
  /** Lower bounds of (upstream time - our time), from event stamps and from HTTP Date headers. */
  private stampOffset: number | undefined
  private dateOffset: number | undefined
  private fastestMs: number | undefined
  private refusedAt: number | undefined
  private refusalLogged = false

  constructor (o: ChannelTraitsOptions = {}) {
    this.o = o
  }

  private get now (): number { return (this.o.now ?? Date.now)() }

  /** What `ts` to send for the events from `from` on (inclusive), whichever way the server reads `ts`. */
  tsFor (from: number): number {
    return this.tsInclusive === true ? from : Math.max(0, from - 1)
  }

  get inclusive (): boolean | undefined { return this.tsInclusive }
  /** The width of one timestamp step: 1 ms, or 1000 ms while every timestamp seen was whole seconds. */
  get granularity (): number { return this.precisionMs }
  get holds (): boolean | undefined { return this.holding }
  get lateStampMs (): number { return this.lateMs }

  /**
   * When a poll that brought events should be followed by a re-read of them
   * (ms from the last new event), or undefined when none is needed. An event
   * can be stored later than it is stamped (a reply stamped with its
   * request's time); asked from after the stamp, no poll would ever return
   * it. Until the channel has shown that it never does this, one re-read
   * follows each burst; once it has, a re-read every second while the lag
   * lasts.
   */
  recheckAfter (): number | undefined {
    if (this.lateMs > 0) return 1000
    return this.cleanRechecks < CLEAN_RECHECKS ? DEFAULT_RECHECK_MS : undefined
  }

  /** How long after the last new event re-reads go on, once late stamps were seen. */
  get recheckWindowMs (): number {
    return this.lateMs === 0 ? DEFAULT_RECHECK_MS : Math.min(120_000, Math.ceil(this.lateMs * 1.5) + 1000)
  }

  /** How far back from the newest event the hashes of delivered events are kept. */
  get keepMs (): number {
    return Math.max(KEEP_MS, this.lateMs * 2 + this.precisionMs)
  }

  /** Timestamps of one answer: their precision, and how far the upstream's clock is ahead of ours. */
  stamps (times: number[], receivedAt: number): void {
    let newest: number | undefined
    for (const t of times) {
      if (this.precisionMs !== 1 && t % 1000 !== 0) {
        this.precisionMs = 1
        this.info({}, 'upstream timestamps have milliseconds')
      }
      if (newest === undefined || t > newest) newest = t
    }
    if (newest === undefined) return
    this.stampOffset = Math.max(this.stampOffset ?? -Infinity, newest - receivedAt)
    if (this.dateOffset !== undefined && this.stampOffset < this.dateOffset - 2000) {
      this.quirk('clock_mismatch', { behindMs: Math.round(this.dateOffset - this.stampOffset) })
    }
  }

  /** Whether the upstream's clock is known from its own event stamps (not only from Date headers). */
  get stampClock (): boolean { return this.stampOffset !== undefined }

  /** The upstream time at our time `local`, by its event stamps; undefined while none was seen. */
  stampTimeAt (local: number): number | undefined {
    return this.stampOffset === undefined ? undefined : this.step(local + this.stampOffset)
  }

  /** The HTTP Date header of any answer: the upstream's clock to the second. */
  date (header: string | undefined, receivedAt: number): void {
    if (header === undefined) return
    const at = Date.parse(header)
    if (Number.isFinite(at)) this.dateOffset = Math.max(this.dateOffset ?? -Infinity, at - receivedAt)
  }

  /**
   * The upstream's time now, as low as it can be: where a new connection's
   * stream starts, so that nothing after its welcome is missed. Event stamps
   * are preferred over Date headers: they are what `ts` is compared with.
   * While timestamps may be whole seconds, it is the second's start.
   * Undefined before the upstream has answered anything.
   */
  upstreamNow (): number | undefined {
    const offset = this.stampOffset ?? this.dateOffset
    return offset === undefined ? undefined : this.step(this.now + offset)
  }

  /** The start of the timestamp step holding `t`: an event stamped in whole seconds is stamped at its second's start. */
  private step (t: number): number {
    return Math.floor(t / this.precisionMs) * this.precisionMs
  }

  /**
   * One answer to a poll sent with `ts`: `known` are the times of events in
   * it that had been delivered before. An inclusive server returns a known
   * event stamped `ts`; an exclusive one never does.
   */
  bound (ts: number, known: number[], expectedAtTs: boolean): void {
    if (this.tsInclusive !== undefined) return
    if (known.includes(ts)) {
      this.tsInclusive = true
      this.info({}, 'upstream /events returns the events at `ts` itself (inclusive bound)')
    } else if (expectedAtTs && ++this.exclusiveHints >= 2) {
      this.tsInclusive = false
      this.info({}, 'upstream /events returns only events after `ts` (exclusive bound)')
    }
  }

  /** An answer that brought nothing, and how long it took. */
  empty (tookMs: number): void {
    const held = tookMs >= HELD_MS
    if (!held) this.quirk('quick_empty', { tookMs }, 'upstream answers an empty /events poll at once: polls are paced to about one a second')
    if (this.holding === held) return
    this.holding = held
    if (held) this.info({}, 'upstream holds an empty /events poll (long polling)')
  }

  /** A new event stamped `lagMs` before an event delivered earlier. */
  late (lagMs: number): void {
    this.quirk('late_stamp', { lagMs }, 'upstream stored an event later than its timestamp says: recent events are read again for a while after each')
    if (lagMs > this.lateMs) this.lateMs = lagMs
  }

  /** A re-read that found nothing new. */
  recheckClean (): void {
    if (this.lateMs > 0 || this.cleanRechecks >= CLEAN_RECHECKS) return
    if (++this.cleanRechecks === CLEAN_RECHECKS) this.info({ rechecks: CLEAN_RECHECKS }, 'upstream stores events when it stamps them: recent events are no longer read again')
  }

  /** Counts a quirk; logs it the first time it is seen on this channel. */
  quirk (kind: Quirk, fields: object = {}, message?: string): void {
    this.o.onQuirk?.(kind)
    if (this.quirksLogged.has(kind)) return
    this.quirksLogged.add(kind)
    this.o.log?.warn({ ...fields, quirk: kind }, message ?? QUIRK_MESSAGES[kind])
  }

  /**
   * The upstream refused the channel token (`reason` never holds it). Logged
   * once until the token works again; new sockets are refused for a while.
   */
  refuse (reason: string, fields: object = {}): void {
    this.refusedAt = this.now
    if (this.refusalLogged) return
    this.refusalLogged = true
    const log = this.o.log
    if (log === undefined) return
    const channel = log.bindings?.().channel
    const name = typeof channel === 'string' ? channel : undefined
    // The default channel's token is CHATAPI_TOKEN; any other comes from CHANNELS.
    const setting = name === undefined || name === 'default' ? 'CHATAPI_TOKEN' : `the "token" of "${name}" in CHANNELS`
    const which = name === undefined ? '' : ` of "${name}"`
    log.warn({ ...fields, reason }, `upstream refuses the channel token${which}: its sockets are closed with 4502 ("upstream rejects the channel") and new ones are refused for a minute; check ${setting} against the Chat API channel of your project`)
  }

  /** The token worked. */
  accepted (): void {
    if (this.refusedAt === undefined && !this.refusalLogged) return
    if (this.refusalLogged) this.o.log?.info({}, 'upstream accepts the channel token again')
    this.refusedAt = undefined
    this.refusalLogged = false
  }

  /** Whether a new socket of the channel is refused now. */
  get refused (): boolean {
    return this.refusedAt !== undefined && this.now - this.refusedAt < REFUSED_MS
  }

  /** A finished call's round trip. */
  roundTrip (ms: number): void {
    if (ms >= 0 && (this.fastestMs === undefined || ms < this.fastestMs)) this.fastestMs = ms
  }

  /**
   * How long after a request is written it has surely reached the upstream:
   * the fastest round trip seen (which includes the way there), at least a
   * few milliseconds, at most a second.
   */
  get arrivalMs (): number {
    return Math.min(1000, Math.max(5, Math.ceil(this.fastestMs ?? 20)))
  }

  /** A summary for the logs and the probe. */
  summary (): Record<string, unknown> {
    return {
      tsBound: this.tsInclusive === undefined ? 'unknown' : this.tsInclusive ? 'inclusive' : 'exclusive',
      precisionMs: this.precisionMs,
      holds: this.holding ?? 'unknown',
      lateStampMs: this.lateMs,
      clockOffsetMs: this.stampOffset ?? this.dateOffset ?? null
    }
  }

  private info (fields: object, msg: string): void {
    this.o.log?.info({ ...fields, upstream: this.summary() }, msg)
  }
}

const QUIRK_MESSAGES: Record<Quirk, string> = {
  untimed_event: 'upstream sent events without a usable timestamp: they are delivered once, by content',
  late_stamp: 'upstream stored an event later than its timestamp says',
  quick_empty: 'upstream answers an empty /events poll at once',
  stale_answer: 'upstream keeps answering /events with events already delivered: polls are paced to about one a second',
  clock_mismatch: 'upstream event timestamps run behind its Date header (another zone or clock): connections start by its timestamps'
}
