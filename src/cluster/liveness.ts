import { aliveKey } from './keys.js'
import type { RedisClient } from './redis.js'

/**
 * Whether instances are alive, by one key each in Redis. This instance
 * renews its own once a third of a lease: one command for all the leases it
 * holds, where each lease used to be renewed on its own. A lease is valid
 * while the alive key of the instance it names is there, so the others bid
 * for an instance's leases once its key is gone (REDIS_LEASE_MS after its
 * last renewal), and ask about each instance they wait on once per check,
 * not about each lease.
 *
 * The renewal is a PEXPIRE, which cannot bring back a key that expired:
 * once the key has lapsed it stays absent until `renew` sets it again and
 * says so, even when the answer of the renewal that found it gone was lost.
 * So this instance always learns that another may have bid for its leases.
 */
export class Liveness {
  private readonly redis: RedisClient
  private readonly prefix: string
  private readonly leaseMs: number
  private readonly key: string
  private resolveSet: (() => void) | undefined
  private ended = false
  /** The key was found gone, and the lapse is not reported yet (setting it again failed, or its answer was lost). */
  private lapsePending = false
  /** Resolves once this instance's key has been set the first time. */
  readonly set: Promise<void>

  constructor (redis: RedisClient, prefix: string, instance: string, leaseMs: number) {
    this.redis = redis
    this.prefix = prefix
    this.leaseMs = leaseMs
    this.key = aliveKey(prefix, instance)
    this.set = new Promise((resolve) => { this.resolveSet = resolve })
  }

  /** Renews this instance's key; true when it had lapsed (or never was), and is set again now. */
  async renew (): Promise<boolean> {
    if (this.ended) return false
    if (!this.lapsePending && await this.redis.pexpire(this.key, this.leaseMs) === 1) return false
    this.lapsePending = true
    await this.redis.set(this.key, '1', 'PX', this.leaseMs)
    this.lapsePending = false
    this.resolveSet?.()
    this.resolveSet = undefined
    return true
  }

  /** The instances of `instances` whose key is gone. One command each (on a Redis Cluster each key has a slot of its own), sent at once. */
  async dead (instances: Iterable<string>): Promise<Set<string>> {
    const list = [...instances]
    const found = await Promise.all(list.map(async (i) => await this.redis.exists(aliveKey(this.prefix, i))))
    return new Set(list.filter((_, k) => found[k] === 0))
  }

  /** This instance stops: the others may bid for what it still holds at once. */
  async end (): Promise<void> {
    this.ended = true
    await this.redis.del(this.key)
  }
}
