import { randomBytes } from 'node:crypto'
import { feedId, type FeedKey, type FeedSource, type FeedSourceOptions } from '../feed/hub.js'
import type { PollGate } from '../feed/poll-gate.js'
import { PollerContexts } from '../feed/poller.js'
import type { ChatApi } from '../upstream/chat-api.js'
import { FeedStreams } from './feed-stream.js'
import type { RedisHealth } from './redis-health.js'
import { feedKeys, type FeedKeys } from './keys.js'
import type { Notifier } from './notifier.js'
import type { RedisClient } from './redis.js'
import { StreamSource, type StreamSourceContext } from './stream-source.js'
import type { Log } from '../lib/log.js'

export interface ClusterFeedsOptions {
  redis: RedisClient
  notifier: Notifier
  health: RedisHealth
  apis: Map<string, ChatApi>
  prefix: string
  leaseMs: number
  maxLen: number
  streamTtlMs: number
  backoffBaseMs: number
  backoffMaxMs: number
  gate?: PollGate | undefined
  log: Log
}

/**
 * The stream sources of this instance, one per feed it serves, and the
 * timer that keeps their leases: an owner renews every third of the lease,
 * so a missed renewal or two still keeps it; the others bid as often, so an
 * owner that died is replaced within about a lease and a third.
 */
export class ClusterFeeds {
  /** Unique per process, so that a restarted instance never mistakes an old lease for its own. */
  readonly instance = randomBytes(9).toString('base64url')
  private readonly o: ClusterFeedsOptions
  private readonly streams: FeedStreams
  private readonly sources = new Map<string, StreamSource>()
  private readonly releases = new Set<Promise<void>>()
  private readonly timer: NodeJS.Timeout
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
    this.streams = new FeedStreams(opts.redis, { leaseMs: opts.leaseMs, maxLen: opts.maxLen, ttlMs: opts.streamTtlMs })
    this.timer = setInterval(() => { this.tick() }, Math.max(100, Math.floor(opts.leaseMs / 3)))
    this.timer.unref()
    opts.health.onChange((up) => {
      if (!up) return
      for (const s of this.sources.values()) s.resync()
      this.tick()
    })
    opts.notifier.onReconnect(() => { this.tick() })
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
  }

  private tick (): void {
    for (const s of this.sources.values()) void s.tick()
  }

  private release (keys: FeedKeys, token: string): void {
    const p = this.streams.release(keys, token).catch(() => {})
    this.releases.add(p)
    void p.then(() => { this.releases.delete(p) })
  }
}
