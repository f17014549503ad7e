import { readAfter } from '../feed/catch-up.js'
import type { CursorPosition } from '../feed/cursor.js'
import { EventWindow, positionOf as posOf, samePoll as same, type FeedEvent } from '../feed/event.js'
import type { FeedSource, FeedSourceOptions } from '../feed/local-hub.js'
import type { PollGate } from '../feed/poll-gate.js'
import { Poller } from '../feed/poller.js'
import type { StreakLog } from '../feed/streak-log.js'
import type { ChatApi } from '../upstream/chat-api.js'
import { MAX_SEQ, type FeedStreams, type StreamEntry } from './feed-stream.js'
import type { RedisHealth } from './redis-health.js'
import type { FeedKeys } from './keys.js'
import type { Notifier } from './notifier.js'

/** What the stream sources of one instance share. */
export interface StreamSourceContext {
  streams: FeedStreams
  notifier: Notifier
  health: RedisHealth
  /** Unique per process: the first part of every lease token this instance holds. */
  instance: string
  api: ChatApi
  /** Events an owner keeps while Redis cannot take them, before it stops polling. */
  maxHeld: number
  backoffBaseMs: number
  backoffMaxMs: number
  gate?: PollGate | undefined
  /** Upstream failures of the channel's polls, logged once per streak. */
  streak?: StreakLog | undefined
  /** This source took the lease (`true`) or gave it up (`false`). */
  onOwner: (owns: boolean) => void
  /** The stream had a gap that the upstream could not fill. */
  onLost: () => void
  /** Gives the lease up in the background (stop() cannot wait). */
  release: (keys: FeedKeys, token: string) => void
  onStop: () => void
}

interface Ownership {
  token: string
  poller: Poller
  /** The last event in the stream from this owner: the `prev` of the next; undefined when unknown. */
  chain: CursorPosition | undefined
  /** Polled but not yet in the stream (Redis was away or slow), oldest first. */
  held: FeedEvent[]
  /** How many of `held` went to this instance's sockets already, straight from the poll. */
  handed: number
  flushing: boolean
}

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
export class StreamSource implements FeedSource {
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
  private paused = false
  private reading = false
  private again = false
  private isReady = false
  private initializing = false
  private acquiring = false
  private stopped = false
  private owner: Ownership | undefined
  private readonly onNotify = (message: string): void => {
    if (message === 'release') void this.tryAcquire()
    else if (message === 'fatal') this.o.onFatal()
    else void this.read()
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
  }

  get position (): number | undefined { return this.at?.ts }
  get isPaused (): boolean { return this.paused }
  get owns (): boolean { return this.owner !== undefined }
  get held (): number { return this.owner?.held.length ?? 0 }
  /** The last event handed over, or where reading began. */
  get last (): CursorPosition | undefined { return this.at }

  start (): void { void this.initialize() }

  stop (): void {
    if (this.stopped) return
    this.stopped = true
    this.c.onStop()
    this.c.notifier.unlisten(this.keys.notify, this.onNotify)
    const own = this.owner
    if (own !== undefined) {
      this.disown(own)
      this.c.release(this.keys, own.token)
    }
  }

  pause (): void { this.paused = true }

  resume (): void {
    if (!this.paused) return
    this.paused = false
    void this.read()
  }

  /** Keeps the lease (or bids for it), and looks for entries a lost notification may have hidden. */
  async tick (): Promise<void> {
    if (this.stopped) return
    if (!this.isReady) {
      await this.initialize()
      return
    }
    if (this.owner !== undefined) await this.keepLease(this.owner)
    else await this.tryAcquire()
    await this.read()
  }

  /** Redis came back: the stream may have been rebuilt, so read again from the last millisecond handed over. */
  resync (): void {
    this.lastId = this.at === undefined ? '0-0' : `${Math.max(0, this.at.ts - 1)}-${MAX_SEQ}`
  }

  private async initialize (): Promise<void> {
    if (this.initializing || this.isReady || this.stopped) return
    this.initializing = true
    try {
      await this.c.notifier.listen(this.keys.notify, this.onNotify)
      await this.findStart()
      this.c.health.ok()
      if (this.stopped) return
      this.isReady = true
    } catch (err) {
      this.c.health.failed(err)
      return
    } finally {
      this.initializing = false
    }
    await this.tryAcquire()
    // Another instance holds the lease: its poll is the one upstream, and it is under way.
    if (this.owner === undefined) this.o.onListening()
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
    if (!this.isReady || this.stopped) return
    if (this.reading) {
      this.again = true
      return
    }
    this.reading = true
    try {
      do {
        this.again = false
        while (!this.paused && !this.stopped) {
          const entries = await this.c.streams.after(this.keys, this.lastId, BATCH)
          this.c.health.ok()
          if (this.stopped || !await this.takeAll(entries)) return
          if (entries.length < BATCH) break
        }
      } while (this.again && !this.paused && !this.stopped)
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
        if (this.stopped) return false
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

  /** Moves the position past new events and hands them over. */
  private accept (events: FeedEvent[]): void {
    for (const e of events) this.advance(e)
    this.emit(events)
  }

  private async tryAcquire (): Promise<void> {
    if (!this.isReady || this.stopped || this.acquiring || this.owner !== undefined) return
    this.acquiring = true
    try {
      const got = await this.c.streams.acquire(this.keys, this.c.instance)
      this.c.health.ok()
      if (got === undefined) return
      if (this.stopped) {
        this.c.release(this.keys, got.token)
        return
      }
      this.own(got.token, got.last === undefined ? this.at ?? this.o.start : posOf(got.last))
    } catch (err) {
      this.c.health.failed(err)
    } finally {
      this.acquiring = false
    }
  }

  private async keepLease (own: Ownership): Promise<void> {
    try {
      const state = await this.c.streams.renew(this.keys, own.token)
      this.c.health.ok()
      if (this.owner !== own) return
      if (state === 'taken') {
        this.disown(own)
        return
      }
      if (state === 'vacant') {
        // The lease lapsed (Redis was away past it, or lost its data) and nobody took it: take it back.
        const got = await this.c.streams.acquire(this.keys, this.c.instance)
        if (this.owner !== own) return
        if (got === undefined) {
          this.disown(own)
          return
        }
        if (got.last !== undefined && !same(posOf(got.last), own.chain)) {
          // Another owner wrote meanwhile: start over from the stream.
          this.disown(own)
          if (this.stopped) this.c.release(this.keys, got.token)
          else this.own(got.token, posOf(got.last))
          return
        }
        own.token = got.token
      }
      if (own.held.length > 0) await this.flush(own)
    } catch (err) {
      this.c.health.failed(err)
    }
  }

  /** Polls for the cluster from `start`: after the stream's last event, or from a time. */
  private own (token: string, start: CursorPosition): void {
    const own: Ownership = { token, chain: start.hash === '' ? undefined : start, held: [], handed: 0, flushing: false, poller: undefined as unknown as Poller }
    const ctx = { upstream: this.c.api, traits: this.c.api.traits, backoffBaseMs: this.c.backoffBaseMs, backoffMaxMs: this.c.backoffMaxMs, gate: this.c.gate, streak: this.c.streak }
    own.poller = new Poller(ctx, this.o.key, {
      onEvents: (events) => { this.polled(own, events) },
      onFatal: () => { this.fatal() },
      onListening: () => { this.o.onListening() },
      // The stream's last event is no longer upstream: what comes next does not follow it.
      onStart: (outcome) => { if (!outcome.resumed) own.chain = undefined },
      log: this.o.log
    }, start, start.hash === '' ? this.o.before : undefined)
    this.owner = own
    this.c.onOwner(true)
    own.poller.start()
  }

  private disown (own: Ownership): void {
    own.poller.stop()
    if (this.owner !== own) return
    this.owner = undefined
    this.c.onOwner(false)
  }

  private polled (own: Ownership, events: FeedEvent[]): void {
    if (this.owner !== own) return
    own.held.push(...events)
    // One answer at a time: the next poll waits until this one is in the stream.
    own.poller.pause()
    void this.flush(own)
  }

  /** Publishes what the owner holds, fenced by its lease token. */
  private async flush (own: Ownership): Promise<void> {
    if (own.flushing) return
    own.flushing = true
    try {
      while (this.owner === own && own.held.length > 0) {
        if (!this.c.health.up) {
          this.direct(own)
          return
        }
        const batch = own.held.slice(0, BATCH)
        let id: string | undefined
        try {
          id = await this.c.streams.publish(this.keys, own.token, own.chain, batch)
          this.c.health.ok()
        } catch (err) {
          this.c.health.failed(err)
          this.direct(own)
          return
        }
        if (this.owner !== own) return
        if (id === undefined) {
          // Fenced out: another instance holds the lease, or it lapsed. The next tick settles which.
          own.poller.pause()
          return
        }
        own.chain = posOf(batch.at(-1) as FeedEvent)
        own.held.splice(0, batch.length)
        own.handed = Math.max(0, own.handed - batch.length)
      }
      if (this.owner === own) own.poller.resume()
    } finally {
      own.flushing = false
    }
  }

  /**
   * Redis cannot take the events now: this instance's sockets get them
   * straight from the poll, if they have had everything published before;
   * the events stay held for the stream, and polling goes on while the
   * held events fit in the bound.
   */
  private direct (own: Ownership): void {
    const caughtUp = own.handed > 0 || same(this.at, own.chain)
    if (caughtUp && !this.paused && own.handed < own.held.length) {
      this.accept(own.held.slice(own.handed))
      own.handed = own.held.length
    }
    if (own.held.length < this.c.maxHeld) own.poller.resume()
    else own.poller.pause()
  }

  private fatal (): void {
    this.c.streams.announce(this.keys, 'fatal').catch(() => {})
    this.o.onFatal()
  }
}

/** Only what the hub reads of an event: a stream entry carries more. */
function posAndJson (e: FeedEvent): FeedEvent {
  return { ts: e.ts, hash: e.hash, json: e.json }
}
