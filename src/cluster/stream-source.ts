import { readAfter } from '../feed/catch-up.js'
import type { CursorPosition } from '../feed/cursor.js'
import { EventWindow, positionOf as posOf, samePoll as same, type FeedEvent } from '../feed/event.js'
import type { FeedKey, FeedSource, FeedSourceOptions } from '../feed/hub.js'
import type { Log } from '../lib/log.js'
import type { ChatApi } from '../upstream/chat-api.js'
import { MAX_SEQ, type StreamEntry } from './feed-stream.js'
import type { FeedKeys } from './keys.js'
import type { LeaseHolder } from './lease.js'
import { LeaseClaim, type ClaimContext, type ClaimTick } from './lease-claim.js'
import type { Notifier } from './notifier.js'

/** What the stream sources of one instance share. */
export interface StreamSourceContext extends ClaimContext {
  notifier: Notifier
  api: ChatApi
  /** The stream had a gap that the upstream could not fill. */
  onLost: () => void
  onStop: () => void
  /** How often a source reads its stream without a notification, in case one was lost. */
  readMs: number
}

/** One tick of the instance: `full` after Redis or its pub/sub came back, when every source reads again. */
export interface SourceTick extends ClaimTick {
  full: boolean
}

/**
 * Where a source is. It changes in `to()` only: `new` until started,
 * `starting` while it finds where to read from, `ready` while it reads (and
 * may hold the lease), `stopped` for good. A failed start goes back to
 * `new`, and the next tick tries again.
 */
type SourceState = 'new' | 'starting' | 'ready' | 'stopped'

/** Entries read from Redis at once. */
const BATCH = 200

/**
 * A feed's events as this instance sees them in a cluster. Every instance
 * with sockets for the feed reads the feed's Redis Stream; the one that holds
 * the feed's lease also polls the upstream and appends what it gets.
 *
 * Each stream entry names the event before it, so a reader knows whether an
 * entry follows what it handed over last. An entry that does not follow but
 * was handed over lately (the reader keeps their hashes, as a poller does)
 * is skipped; any other entry that does not follow is a gap
 * (an owner that started from another point, a stream trimmed past a slow
 * reader, Redis that lost its data), which is filled from the upstream or,
 * failing that, makes the feed's sockets resume.
 */
export class StreamSource implements FeedSource, LeaseHolder {
  readonly keys: FeedKeys
  private readonly o: FeedSourceOptions
  private readonly c: StreamSourceContext
  /** The ID of the last stream entry read. */
  private lastId = '0-0'
  /** The last event handed over, and the events handed over lately. */
  private at: CursorPosition | undefined
  private seen = new EventWindow()
  private startPending: boolean
  /** The feed begins at a time, not after an event: every event stamped from then on is new to it. */
  private readonly fromTime: number | undefined
  private state: SourceState = 'new'
  private paused = false
  /** A read of the stream is under way; `again` asks it for one more pass. */
  private reading = false
  private again = false
  /** When the next read without a notification is due. */
  private nextRead: number
  private readonly claim: LeaseClaim
  private readonly onNotify = (message: string): void => {
    if (message === 'release') {
      if (this.is('ready')) this.claim.released()
    } else if (message.startsWith('lease:')) {
      this.claim.heard(message.slice('lease:'.length))
    } else if (message === 'fatal') {
      this.o.onFatal()
    } else {
      void this.read()
    }
  }

  constructor (o: FeedSourceOptions, c: StreamSourceContext, keys: FeedKeys) {
    this.o = o
    this.c = c
    this.keys = keys
    this.fromTime = o.start.hash === '' ? o.start.ts : undefined
    this.at = this.fromTime === undefined ? o.start : undefined
    if (this.at !== undefined) this.seen.add(this.at as FeedEvent)
    for (const e of o.before ?? []) this.seen.add(e as FeedEvent)
    this.startPending = this.fromTime === undefined
    // Spread over the period, so that the sources of an instance do not all read at once.
    this.nextRead = Date.now() + Math.random() * c.readMs
    this.claim = new LeaseClaim(c, keys, this, { start: o.start, before: o.before })
  }

  get position (): number | undefined { return this.at?.ts }
  get isPaused (): boolean { return this.paused }
  get owns (): boolean { return this.claim.owns }
  get held (): number { return this.claim.held }
  /** The instance whose alive key decides when this source bids for the lease. */
  get waitsOn (): string | undefined { return this.claim.waitsOn }
  /** The last event handed over, or where reading began. */
  get last (): CursorPosition | undefined { return this.at }
  get key (): FeedKey { return this.o.key }
  get log (): Log { return this.o.log }

  start (): void { void this.initialize() }

  stop (): void {
    if (this.state === 'stopped') return
    this.to('stopped')
    this.c.onStop()
    this.c.notifier.unlisten(this.keys.notify, this.onNotify)
    this.claim.stop()
  }

  pause (): void { this.paused = true }

  resume (): void {
    if (!this.paused) return
    this.paused = false
    void this.read()
  }

  /** Keeps the lease (or bids for it), and now and then looks for entries a lost notification may have hidden. */
  async tick (t: SourceTick): Promise<void> {
    if (this.state === 'stopped' || this.state === 'starting') return
    if (this.state === 'new') {
      await this.initialize()
      return
    }
    await this.claim.tick(t)
    if (t.full || t.now >= this.nextRead) await this.read()
  }

  /** Redis came back: the stream may have been rebuilt, so read again from the last millisecond handed over. */
  resync (): void {
    this.lastId = this.at === undefined ? '0-0' : `${Math.max(0, this.at.ts - 1)}-${MAX_SEQ}`
  }

  /** Hands events straight to this instance's sockets (the lease's, while Redis cannot take them). */
  accept (events: FeedEvent[]): void {
    for (const e of events) this.advance(e)
    this.emit(events)
  }

  onListening (): void { this.o.onListening() }

  /** The upstream refused the channel token: every instance's sockets of the feed are told. */
  fatal (): void {
    this.c.streams.announce(this.keys, 'fatal').catch(() => {})
    this.o.onFatal()
  }

  /** The one place the state changes. */
  private to (state: SourceState): void { this.state = state }
  /** (A method, not a comparison: the state moves while a call awaits Redis.) */
  private is (state: SourceState): boolean { return this.state === state }

  private async initialize (): Promise<void> {
    if (this.state !== 'new') return
    this.to('starting')
    try {
      await this.c.notifier.listen(this.keys.notify, this.onNotify)
      await this.findStart()
      this.c.health.ok()
    } catch (err) {
      this.c.health.failed(err)
      if (this.is('starting')) this.to('new')
      return
    }
    if (!this.is('starting')) return
    this.to('ready')
    await this.claim.start()
    // Another instance holds the lease: its poll is the one upstream, and it is under way.
    if (!this.claim.owns) this.o.onListening()
    await this.read()
  }

  /** Where reading begins: after the resume cursor's event, or at the feed's starting time. */
  private async findStart (): Promise<void> {
    const start = this.o.start
    if (this.fromTime !== undefined) {
      await this.findFromTime(this.fromTime)
      return
    }
    const found = await this.c.streams.find(this.keys, start)
    if (found !== undefined) {
      this.lastId = found.entry.id
      for (const e of found.sameMs) this.seen.add(e)
      this.settleStart({ resumed: true })
      return
    }
    // Not in Redis: the stream is read from its start, skipping what the cursor covers and filling a gap from the upstream.
    this.lastId = '0-0'
    if (await this.c.streams.last(this.keys) !== undefined) return
    // Nothing in Redis at all: ask the upstream what came after the cursor, as a bridge on its own would.
    const read = await readAfter(this.c.api, this.o.key, start)
    if (typeof read === 'string') {
      this.at = undefined
      this.seen = new EventWindow()
      this.settleStart({ resumed: false, gap: read })
      return
    }
    this.accept(read)
    this.settleStart({ resumed: true })
  }

  /**
   * Reading from a time: the stream's entries from that time on (stream IDs
   * take an event's upstream millisecond, or a later one). A stream that
   * begins later (an owner that started later, a trimmed or expired stream)
   * is preceded by what the upstream has from that time to its first entry.
   */
  private async findFromTime (ts: number): Promise<void> {
    const [first] = await this.c.streams.first(this.keys)
    this.lastId = ts <= 0 ? '0-0' : `${ts - 1}-${MAX_SEQ}`
    if (first === undefined || first.ts <= ts) return
    const read = await readAfter(this.c.api, this.o.key, { ts, hash: '' }, { before: posOf(first) })
    if (typeof read === 'string') {
      this.o.log.warn({ reason: read }, 'a resume from before the connection\'s first event could not read its first events')
      return
    }
    this.accept(read)
    this.lastId = '0-0'
  }

  private settleStart (outcome: { resumed: boolean, gap?: string }): void {
    if (!this.startPending) return
    this.startPending = false
    this.o.onStart(outcome)
  }

  private async read (): Promise<void> {
    if (this.state !== 'ready') return
    if (this.reading) {
      this.again = true
      return
    }
    this.reading = true
    this.nextRead = Date.now() + this.c.readMs
    try {
      do {
        this.again = false
        while (!this.paused && this.is('ready')) {
          const entries = await this.c.streams.after(this.keys, this.lastId, BATCH)
          this.c.health.ok()
          if (!this.is('ready') || !await this.takeAll(entries)) return
          if (entries.length < BATCH) break
        }
      } while (this.again && !this.paused && this.is('ready'))
    } catch (err) {
      this.c.health.failed(err)
      this.resync()
    } finally {
      this.reading = false
    }
  }

  /** Hands over the entries that follow; false when the feed has ended. */
  private async takeAll (entries: StreamEntry[]): Promise<boolean> {
    let out: FeedEvent[] = []
    for (const e of entries) {
      const at = this.at
      if (this.seen.has(e.hash)) {
        // Handed over already (or the client's other connections had it before this one began).
        this.lastId = e.id
        continue
      }
      if (at === undefined || same(e.prev, at)) {
        out.push(e)
        this.advance(e)
        this.settleStart({ resumed: true })
      } else if (e.ts >= at.ts && !this.seen.has(e.hash)) {
        this.emit(out)
        out = []
        const read = await readAfter(this.c.api, this.o.key, at, { through: posOf(e) })
        if (this.is('stopped')) return false
        if (typeof read !== 'string') {
          this.accept(read)
          this.settleStart({ resumed: true })
        } else if (this.startPending) {
          // The resume fails; the socket goes on from here and is told of the gap.
          this.settleStart({ resumed: false, gap: read })
          this.accept([e])
        } else {
          this.c.onLost()
          this.o.onGap(read)
          return false
        }
      }
      this.lastId = e.id
    }
    this.emit(out)
    return true
  }

  private advance (e: FeedEvent): void {
    this.at = posOf(e)
    this.seen.add(e)
    this.seen.prune(this.c.api.traits.keepMs)
  }

  /** Hands over events that the position has already moved past. */
  private emit (events: FeedEvent[]): void {
    if (events.length > 0) this.o.onEvents(events.map(posAndJson))
  }
}

/** Only what the hub reads of an event: a stream entry carries more. */
function posAndJson (e: FeedEvent): FeedEvent {
  return { ts: e.ts, hash: e.hash, json: e.json }
}
