import { positionOf, samePoll, type FeedEvent } from '../feed/event.js'
import type { CursorPosition } from '../feed/cursor.js'
import type { FeedKey } from '../feed/hub.js'
import { Poller, type PollerContext } from '../feed/poller.js'
import type { Log } from '../lib/log.js'
import type { FeedStreams, StreamEntry } from './feed-stream.js'
import type { FeedKeys } from './keys.js'
import type { RedisHealth } from './redis-health.js'

/** What a lease needs of the instance around it. */
export interface LeaseContext {
  streams: FeedStreams
  health: RedisHealth
  /** Unique per process: the first part of every lease token this instance holds. */
  instance: string
  /** Events an owner keeps while Redis cannot take them, before it stops polling. */
  maxHeld: number
  polling: PollerContext
}

/** The stream reader that holds the lease: where the owner's polled events go when Redis cannot take them. */
export interface LeaseHolder {
  readonly key: FeedKey
  readonly log: Log
  /** The last event this instance's sockets had, or undefined. */
  readonly last: CursorPosition | undefined
  readonly isPaused: boolean
  /** Hands events straight to this instance's sockets. */
  accept: (events: FeedEvent[]) => void
  onListening: () => void
  /** The upstream refused the channel token. */
  fatal: () => void
}

/** Entries written to Redis at once. */
const BATCH = 200

/**
 * The lease of one feed while this instance holds it: the one upstream poll
 * of the feed for the whole cluster, and the appends of what it brings to
 * the feed's Redis Stream, fenced by the lease token so that an owner that
 * lost the lease cannot write. One answer at a time: the next poll waits
 * until the last answer is in the stream.
 */
export class Lease {
  token: string
  private readonly c: LeaseContext
  private readonly keys: FeedKeys
  private readonly holder: LeaseHolder
  private readonly poller: Poller
  /** The last event in the stream from this owner: the `prev` of the next; undefined when unknown. */
  private chain: CursorPosition | undefined
  /** Polled but not yet in the stream (Redis was away or slow), oldest first. */
  private readonly held: FeedEvent[] = []
  /** How many of `held` went to this instance's sockets already, straight from the poll. */
  private handed = 0
  private flushing = false
  /** The last append found another token in the lease: polling waits until the lease is checked. */
  private fencedOut = false
  private ended = false

  /** Polls for the cluster from `start`: after the stream's last event, or from a time (then `before` are not new). */
  constructor (c: LeaseContext, keys: FeedKeys, holder: LeaseHolder, token: string, start: CursorPosition, before: CursorPosition[] | undefined) {
    this.c = c
    this.keys = keys
    this.holder = holder
    this.token = token
    this.chain = start.hash === '' ? undefined : start
    this.poller = new Poller(c.polling, holder.key, this, start, start.hash === '' ? before : undefined)
  }

  get log (): Log { return this.holder.log }
  get heldCount (): number { return this.held.length }
  get fenced (): boolean { return this.fencedOut }

  start (): void { this.poller.start() }

  end (): void {
    this.ended = true
    this.poller.stop()
  }

  onEvents (events: FeedEvent[]): void {
    if (this.ended) return
    this.held.push(...events)
    this.poller.pause()
    void this.flush()
  }

  onFatal (): void { this.holder.fatal() }
  onListening (): void { this.holder.onListening() }
  /** The stream's last event is no longer upstream: what comes next does not follow it. */
  onStart (outcome: { resumed: boolean }): void { if (!outcome.resumed) this.chain = undefined }

  /** Keeps the feed's keys from expiring; then, if the lease is still this one's, writes what is held. */
  async renew (): Promise<'renewed' | 'taken' | 'vacant'> {
    const state = await this.c.streams.renew(this.keys, this.token)
    this.c.health.ok()
    if (state === 'renewed' && !this.ended) await this.resume()
    return state
  }

  /** Whether `last`, the stream's last entry, is this owner's last append (or the stream is empty): nobody else wrote. */
  follows (last: StreamEntry | undefined): boolean {
    return last === undefined || samePoll(positionOf(last), this.chain)
  }

  /** The lease was taken again under a new fencing number: appends go on with it. */
  async retoken (token: string): Promise<void> {
    this.token = token
    await this.resume()
  }

  private async resume (): Promise<void> {
    this.fencedOut = false
    if (this.held.length > 0) await this.flush()
  }

  /** Publishes what the owner holds, fenced by its lease token. */
  private async flush (): Promise<void> {
    if (this.flushing) return
    this.flushing = true
    try {
      while (!this.ended && this.held.length > 0) {
        if (!this.c.health.up) {
          this.direct()
          return
        }
        const batch = this.held.slice(0, BATCH)
        let id: string | undefined
        try {
          id = await this.c.streams.publish(this.keys, this.token, this.chain, batch)
          this.c.health.ok()
        } catch (err) {
          this.c.health.failed(err)
          this.direct()
          return
        }
        if (this.ended) return
        if (id === undefined) {
          // Fenced out: another instance holds the lease, or Redis lost it. The claim's next check settles which.
          this.fencedOut = true
          this.poller.pause()
          return
        }
        this.chain = positionOf(batch.at(-1) as FeedEvent)
        this.held.splice(0, batch.length)
        this.handed = Math.max(0, this.handed - batch.length)
      }
      if (!this.ended) this.poller.resume()
    } finally {
      this.flushing = false
    }
  }

  /**
   * Redis cannot take the events now: this instance's sockets get them
   * straight from the poll, if they have had everything published before;
   * the events stay held for the stream, and polling goes on while the
   * held events fit in the bound.
   */
  private direct (): void {
    const caughtUp = this.handed > 0 || samePoll(this.holder.last, this.chain)
    if (caughtUp && !this.holder.isPaused && this.handed < this.held.length) {
      this.holder.accept(this.held.slice(this.handed))
      this.handed = this.held.length
    }
    if (this.held.length < this.c.maxHeld) this.poller.resume()
    else this.poller.pause()
  }
}
