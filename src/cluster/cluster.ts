import type { Config } from '../config.js'
import type { LocalHub } from '../feed/local-hub.js'
import type { PollGate } from '../feed/poll-gate.js'
import type { ChatApi } from '../upstream/chat-api.js'
import { ClusterFeeds } from './cluster-feeds.js'
import { ClusterHub } from './cluster-hub.js'
import { RedisHealth, type HealthLog } from './redis-health.js'
import { Notifier } from './notifier.js'
import { openRedis, type RedisSettings } from './redis.js'
import { RedisResultCache } from './result-cache.js'
import { RedisLanes } from './send-lanes.js'
import { RedisMailStore } from './mail-store.js'
import { RedisPresence } from './presence-store.js'
import { RedisStreamRoutes } from './stream-routes.js'
import type { LocalSockets } from '../webhook/presence.js'

export interface ClusterOptions {
  config: Config
  redis: RedisSettings
  apis: Map<string, ChatApi>
  gate?: PollGate | undefined
  log: HealthLog
  /** Where the upstream polls this instance runs for the cluster log their failures; `log` by default. */
  pollLog?: HealthLog | undefined
}

/** Everything an instance needs to share its work through Redis, and its connections. */
export class Cluster {
  readonly health: RedisHealth
  readonly feeds: ClusterFeeds
  readonly results: RedisResultCache
  readonly lanes: RedisLanes
  private readonly clients: ReturnType<typeof openRedis>[]
  private readonly log: HealthLog
  /** Where Redis is, without credentials, for logs. */
  private readonly where: string
  private readonly redis: ReturnType<typeof openRedis>
  private readonly notifier: Notifier
  private readonly prefix: string

  constructor (o: ClusterOptions) {
    const c = o.config
    this.log = o.log
    this.where = o.redis.url.split(',').map((u) => { const url = new URL(u.trim()); return `${url.protocol}//${url.host}` }).join(',')
    const redis = openRedis(o.redis, 'cmd')
    const sub = openRedis(o.redis, 'sub')
    this.clients = [redis, sub]
    this.health = new RedisHealth(this.clients, o.log)
    const notifier = new Notifier(sub)
    const prefix = c.REDIS_PREFIX
    this.redis = redis
    this.notifier = notifier
    this.prefix = prefix
    this.feeds = new ClusterFeeds({
      redis,
      notifier,
      health: this.health,
      apis: o.apis,
      prefix,
      leaseMs: c.REDIS_LEASE_MS,
      maxLen: c.REDIS_STREAM_MAXLEN,
      maxBytes: c.REDIS_STREAM_MAX_BYTES,
      streamTtlMs: c.REDIS_STREAM_TTL_MS,
      backoffBaseMs: c.BACKOFF_BASE_MS,
      backoffMaxMs: c.BACKOFF_MAX_MS,
      gate: o.gate,
      log: o.pollLog ?? o.log
    })
    this.results = new RedisResultCache({
      redis,
      notifier,
      health: this.health,
      prefix,
      ttlMs: c.RESULT_CACHE_MS,
      clientBytes: c.RESULT_CACHE_CLIENT_BYTES,
      runningMs: c.REDIS_LEASE_MS,
      // A request's whole life (its waits and its upstream call) is REQUEST_TIMEOUT_MS, plus the store's own steps.
      waitMs: c.REQUEST_TIMEOUT_MS + c.REDIS_LEASE_MS
    })
    this.lanes = new RedisLanes({ redis, notifier, health: this.health, prefix, aliveMs: c.REDIS_LEASE_MS, queuePerClient: c.SEND_QUEUE_PER_CLIENT })
  }

  /** Webhook mail in Redis: a delivery taken by any instance reaches the client's sockets on all of them. */
  mailStore (retentionMs: number, perClient: number): RedisMailStore {
    return new RedisMailStore({ redis: this.redis, notifier: this.notifier, health: this.health, prefix: this.prefix, retentionMs, perClient })
  }

  /** Which instances have sockets of a client, for the offline hook; told of this instance's changes through `changed`. */
  presence (local: LocalSockets): RedisPresence {
    return new RedisPresence({ redis: this.redis, health: this.health, prefix: this.prefix, instance: this.feeds.instance, liveness: this.feeds.liveness, local })
  }

  /** The HTTP transport's frames, from the instance that took a POST to the one that holds its stream. */
  streamRoutes (): RedisStreamRoutes {
    return new RedisStreamRoutes({ redis: this.redis, notifier: this.notifier, prefix: this.prefix, instance: this.feeds.instance, liveness: this.feeds.liveness })
  }

  hub (local: LocalHub): ClusterHub {
    return new ClusterHub(local, this.feeds, this.health)
  }

  /** Resolves when Redis answers, or after `ms` (the bridge then starts not ready and becomes ready when Redis does). */
  async waitUp (ms: number): Promise<void> {
    if (this.health.up) return
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms)
      this.health.onChange((up) => { if (up) resolve() })
    })
    clearTimeout(timer)
    if (!this.health.up) this.log.warn({ redis: this.where, error: this.health.error }, 'Redis does not answer: this instance takes no sockets until it does')
  }

  /** Closes the connections; call after the hub is closed. */
  async close (): Promise<void> {
    this.health.close()
    await Promise.all(this.clients.map(async (c) => { await c.quit().catch(() => { c.disconnect() }) }))
  }
}
