import { clientKey } from '../lib/client-key.js'
import type { LocalSockets, Presence } from '../webhook/presence.js'
import { presenceKey } from './keys.js'
import type { Liveness } from './liveness.js'
import type { RedisHealth } from './redis-health.js'
import type { RedisClient } from './redis.js'

export interface RedisPresenceOptions {
  redis: RedisClient
  health: RedisHealth
  prefix: string
  /** This instance's name, as its alive key and its leases carry it. */
  instance: string
  liveness: Liveness
  local: LocalSockets
}

interface Client { channel: string, clientId: string }

/**
 * Which instances have sockets of a client, kept in Redis as a set per
 * client of instance names. An instance adds itself when a client's first
 * socket there says hello and removes itself when its last one closes:
 * commands at those changes only, none per socket and none on a timer.
 * The set has no TTL, since nothing would renew it; what keeps it true is
 * the alive key that every instance renews anyway (one command per instance
 * for all its leases): a member whose alive key is gone (it died, or
 * stopped before Redis took its removals) counts for nothing, and is
 * removed when next seen.
 */
export class RedisPresence implements Presence {
  private readonly o: RedisPresenceOptions
  /** The clients with sockets here, to write again when Redis comes back (a change it did not take is lost). */
  private readonly here = new Map<string, Client>()

  constructor (o: RedisPresenceOptions) {
    this.o = o
    o.health.onChange((up) => { if (up) for (const c of this.here.values()) void this.write(c, true) })
  }

  /** A client's first socket here opened (`present`), or its last closed. */
  changed (channel: string, clientId: string, present: boolean): void {
    const key = clientKey(channel, clientId)
    if (present) this.here.set(key, { channel, clientId })
    else this.here.delete(key)
    void this.write({ channel, clientId }, present)
  }

  /**
   * Asked by the instance that took a delivery: its own sockets first, then
   * the set (one command) and the alive key of each other member (one each,
   * at once; almost always none or one).
   */
  async away (channel: string, clientId: string): Promise<boolean> {
    if (this.o.local.hasClient(channel, clientId)) return false
    const key = presenceKey(this.o.prefix, clientKey(channel, clientId))
    const others = (await this.o.redis.smembers(key)).filter((m) => m !== this.o.instance)
    if (others.length === 0) return true
    const dead = await this.o.liveness.dead(others)
    if (dead.size > 0) void this.o.redis.srem(key, ...dead).catch(() => undefined)
    return dead.size === others.length
  }

  private async write (c: Client, present: boolean): Promise<void> {
    const key = presenceKey(this.o.prefix, clientKey(c.channel, c.clientId))
    try {
      if (present) await this.o.redis.sadd(key, this.o.instance)
      else await this.o.redis.srem(key, this.o.instance)
      this.o.health.ok()
    } catch (err) {
      this.o.health.failed(err)
    }
  }
}
