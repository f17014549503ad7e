import { randomBytes } from 'node:crypto'
import { feedId, type FeedKey, type FeedSource, type FeedSourceOptions } from '../feed/hub.js'
import type { PollGate } from '../feed/poll-gate.js'
import { PollerContexts } from '../feed/poller.js'
import type { ChatApi } from '../upstream/chat-api.js'
import { FeedStreams } from './feed-stream.js'
import { Liveness } from './liveness.js'
import type { RedisHealth } from './redis-health.js'
import { feedKeys, type FeedKeys } from './keys.js'
import type { Notifier } from './notifier.js'
import type { RedisClient } from './redis.js'
import { StreamSource, type SourceTick, type StreamSourceContext } from './stream-source.js'
import type { Log } from '../lib/log.js'

export interface ClusterFeedsOptions {
  redis: RedisClient
  notifier: Notifier
  health: RedisHealth
  apis: Map<string, ChatApi>
  prefix: string
  leaseMs: number
  maxLen: number
  maxBytes: number
  streamTtlMs: number
  backoffBaseMs: number
  backoffMaxMs: number
  gate?: PollGate | undefined
  log: Log
}

/** A source reads its stream without a notification, and a waiter asks who holds the lease, once in this many leases. */
const SAFETY_LEASES = 4

/**
 * The stream sources of this instance, one per feed it serves, and the
 * timer that keeps their leases. Every third of a lease the instance renews
 * its alive key, one command for all the leases it holds, so a missed
 * renewal or two still keeps them; and it asks once about each instance
 * whose leases its sources wait on, so an owner that died is replaced
 * within about a lease and a third. Nothing is sent per feed on that
 * timer: events are announced on the feed's notify channel, and the slow
 * chores of each feed (keeping its keys, a read in case an announcement was
 * lost) come round once in several leases.
 */
export class ClusterFeeds {
  /** Unique per process, so that a restarted instance never mistakes an old lease for its own. */
  readonly instance = randomBytes(9).toString('base64url')
  private readonly o: ClusterFeedsOptions
  private readonly streams: FeedStreams
  /** This instance's alive key; the offline hook's presence asks it which instances are alive. */
  readonly liveness: Liveness
  private readonly sources = new Map<string, StreamSource>()
  private readonly releases = new Set<Promise<void>>()
  /** Releases Redis did not take yet, by token: tried again each tick, or the lease would stay with a live instance that polls nothing. */
  private readonly unreleased = new Map<string, FeedKeys>()
  private readonly timer: NodeJS.Timeout
  private readonly tickMs: number
  private ticking = false
  /** A tick after which every source reads is owed (Redis or pub/sub came back while a tick ran, or its renewal failed). */
  private fullOwed = false
  /** Until then no instance counts as dead: after an outage the owners renew their alive keys first. */
  private graceUntil = 0
  private ownedCount = 0
  private readonly polling: PollerContexts
  /** Leases taken and gaps the upstream could not fill, since start. */
  readonly counts = { acquired: 0, lost: 0 }

  constructor (opts: ClusterFeedsOptions) {
    this.o = opts
    const log = opts.log
    this.polling = new PollerContexts({
      apis: opts.apis,
      backoff: { baseMs: opts.backoffBaseMs, maxMs: opts.backoffMaxMs },
      gate: opts.gate,
      channelLog: (channel) => ({
        warn: (obj, msg) => { log.warn({ channel, ...obj }, msg) },
        info: (obj, msg) => { log.info({ channel, ...obj }, msg) }
      })
    })
    this.streams = new FeedStreams(opts.redis, { leaseMs: opts.leaseMs, maxLen: opts.maxLen, maxBytes: opts.maxBytes, ttlMs: opts.streamTtlMs })
    this.liveness = new Liveness(opts.redis, opts.prefix, this.instance, opts.leaseMs)
    this.tickMs = Math.max(100, Math.floor(opts.leaseMs / 3))
    this.timer = setInterval(() => { void this.tick(false) }, this.tickMs)
    this.timer.unref()
    void this.tick(false)
    opts.health.onChange((up) => {
      if (!up) return
      for (const s of this.sources.values()) s.resync()
      this.graceUntil = Date.now() + this.tickMs
      void this.tick(true)
    })
    opts.notifier.onReconnect(() => { void this.tick(true) })
  }

  /** The FeedSourceFactory of a LocalHub that runs on the cluster. */
  readonly source = (o: FeedSourceOptions): FeedSource => {
    const api = this.o.apis.get(o.key.channel)
    if (api === undefined) throw new Error(`no channel "${o.key.channel}"`)
    const id = feedId(o.key)
    const ctx: StreamSourceContext = {
      streams: this.streams,
      notifier: this.o.notifier,
      health: this.o.health,
      instance: this.instance,
      api,
      maxHeld: this.o.maxLen,
      polling: this.polling.of(o.key.channel),
      alive: this.liveness.set,
      keepMs: Math.max(this.tickMs, Math.floor(this.o.streamTtlMs / 3)),
      recheckMs: SAFETY_LEASES * this.o.leaseMs,
      readMs: SAFETY_LEASES * this.o.leaseMs,
      isDead: async (instance) => (await this.liveness.dead([instance])).has(instance),
      onOwner: (owns) => {
        this.ownedCount += owns ? 1 : -1
        if (owns) this.counts.acquired++
      },
      onLost: () => { this.counts.lost++ },
      release: (keys, token) => { this.release(keys, token) },
      onStop: () => { if (this.sources.get(id) === source) this.sources.delete(id) }
    }
    const source = new StreamSource(o, ctx, feedKeys(this.o.prefix, o.key))
    this.sources.set(id, source)
    return source
  }

  has (key: FeedKey): boolean { return this.sources.has(feedId(key)) }

  /** Feeds this instance polls upstream for the whole cluster. */
  get owned (): number { return this.ownedCount }

  /** Events polled but not yet in Redis. */
  get held (): number {
    let n = 0
    for (const s of this.sources.values()) n += s.held
    return n
  }

  /** Waits for the leases given up so far to be released, so a successor need not wait for them to expire. */
  async close (): Promise<void> {
    clearInterval(this.timer)
    await Promise.all([...this.releases])
    await this.liveness.end().catch(() => {})
  }

  private async tick (full: boolean): Promise<void> {
    if (this.ticking) {
      this.fullOwed ||= full
      return
    }
    this.ticking = true
    full ||= this.fullOwed
    this.fullOwed = false
    try {
      const lapsed = await this.liveness.renew()
      const now = Date.now()
      const waited = new Set<string>()
      for (const s of this.sources.values()) if (s.waitsOn !== undefined) waited.add(s.waitsOn)
      const dead = now < this.graceUntil ? new Set<string>() : await this.liveness.dead(waited)
      this.o.health.ok()
      const t: SourceTick = { now, lapsed, dead, full }
      for (const s of this.sources.values()) void s.tick(t)
      for (const [token, keys] of this.unreleased) this.release(keys, token)
    } catch (err) {
      this.o.health.failed(err)
      this.fullOwed ||= full
    } finally {
      this.ticking = false
    }
  }

  private release (keys: FeedKeys, token: string): void {
    this.unreleased.delete(token)
    const p = this.streams.release(keys, token).catch(() => { this.unreleased.set(token, keys) })
    this.releases.add(p)
    void p.then(() => { this.releases.delete(p) })
  }
}
