import { Cluster } from 'ioredis'
import type { StreamRouter } from '../socket/stream-router.js'
import type { Liveness } from './liveness.js'
import type { Notifier } from './notifier.js'
import type { RedisClient } from './redis.js'

/**
 * The frames of the HTTP transport's POSTs, between instances: a POST taken
 * by one instance is published on the channel of the instance that holds
 * the stream. Unlike the notifier's hints this is data, so PUBLISH's count
 * is the answer: no listener means the stream's instance is gone, and the
 * client is told to open a new stream rather than wait for a result. On a
 * Redis Cluster the count covers only the node that took the PUBLISH, though
 * the message reaches every node: there a zero is checked against the
 * instance's alive key.
 */
export class RedisStreamRoutes implements StreamRouter {
  readonly instance: string
  private readonly redis: RedisClient
  private readonly notifier: Notifier
  private readonly prefix: string
  private readonly liveness: Liveness
  private readonly listener = (message: string): void => {
    const nl = message.indexOf('\n')
    if (nl > 0) this.deliver?.(message.slice(0, nl), message.slice(nl + 1))
  }

  private deliver: ((key: string, body: string) => void) | undefined

  constructor (o: { redis: RedisClient, notifier: Notifier, prefix: string, instance: string, liveness: Liveness }) {
    this.redis = o.redis
    this.liveness = o.liveness
    this.notifier = o.notifier
    this.prefix = o.prefix
    this.instance = o.instance
  }

  private channel (instance: string): string { return `${this.prefix}frames:{${instance}}` }

  async forward (instance: string, key: string, body: string): Promise<boolean> {
    // Not queued for a reconnect: a POST answered 503 must not have its frames arrive later, after the client moved on.
    if (this.redis.status !== 'ready') throw new Error(`Redis is ${this.redis.status}`)
    const listeners = await this.redis.publish(this.channel(instance), `${key}\n${body}`)
    if (listeners > 0) return true
    return this.redis instanceof Cluster && (await this.liveness.dead([instance])).size === 0
  }

  onForwarded (fn: (key: string, body: string) => void): void {
    this.deliver = fn
    void this.notifier.listen(this.channel(this.instance), this.listener)
  }

  close (): void {
    this.notifier.unlisten(this.channel(this.instance), this.listener)
  }
}
