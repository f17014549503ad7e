import { FeedLimitError, type FeedKey, type Hub, type HubStats, type Subscriber, type SubscribeResult } from '../feed/hub.js'
import type { StreamPosition } from '../feed/cursor.js'
import type { LocalHub } from '../feed/local-hub.js'
import type { MailboxEntry } from '../webhook/mailbox.js'
import type { ClusterFeeds } from './cluster-feeds.js'
import type { RedisHealth } from './redis-health.js'

/** Redis is down: a socket for a feed this instance does not serve yet is refused with 1013. */
export class StoreUnavailableError extends FeedLimitError {
  constructor () {
    super()
    this.message = 'Redis is unavailable'
    this.name = 'StoreUnavailableError'
  }
}

/**
 * The hub of an instance in a cluster: the in-process hub's fan-out, memory
 * and flow control, fed by stream sources (see StreamSource) instead of
 * pollers of its own. While Redis is down it keeps serving the feeds it has
 * and refuses sockets that would need a new one.
 */
export class ClusterHub implements Hub {
  private readonly local: LocalHub
  private readonly feeds: ClusterFeeds
  private readonly health: RedisHealth

  constructor (local: LocalHub, feeds: ClusterFeeds, health: RedisHealth) {
    this.local = local
    this.feeds = feeds
    this.health = health
  }

  /**
   * A new socket's stream starts at a time (see LocalHub), and its stream
   * source reads the feed's Redis stream from that time on once it knows
   * where that is, which the local hub waits for before the welcome.
   */
  async subscribe (key: FeedKey, sub: Subscriber, resume?: StreamPosition): Promise<SubscribeResult> {
    if (!this.health.up && !this.feeds.has(key)) throw new StoreUnavailableError()
    return await this.local.subscribe(key, sub, resume)
  }

  deliverWebhook (channel: string, clientId: string, entries: MailboxEntry[]): void {
    this.local.deliverWebhook(channel, clientId, entries)
  }

  unsubscribe (key: FeedKey, sub: Subscriber): void { this.local.unsubscribe(key, sub) }
  drained (key: FeedKey, sub: Subscriber): void { this.local.drained(key, sub) }
  stats (): HubStats { return this.local.stats() }

  async close (): Promise<void> {
    await this.local.close()
    await this.feeds.close()
  }
}
