import { randomBytes } from 'node:crypto'
import { MemoryLanes, type SendLanes } from '../requests.js'
import type { RedisHealth } from './health.js'
import { aliveKey, laneKeys } from './keys.js'
import type { Notifier, Watch } from './notifier.js'
import { Script, type RedisClient } from './redis.js'
import { storeDown } from './result-cache.js'

/** Takes a ticket: the queue is ordered by arrival at Redis. */
const JOIN = new Script(`
local ticket = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ticket, ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
return ticket
`, 3)

/**
 * 1 when the caller is first in the queue. Waiters ahead whose instance died
 * (their liveness key expired) are dropped on the way. The liveness keys
 * share the queue's hash tag, so they live in its slot on a Redis Cluster.
 */
const TURN = new Script(`
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if head == nil then return -1 end
  if head == ARGV[1] then return 1 end
  if redis.call('EXISTS', ARGV[2] .. head) == 1 then return 0 end
  redis.call('ZREM', KEYS[1], head)
end
`, 1)

const LEAVE = new Script(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[2], '1')
return 1
`, 2)

export interface RedisLanesOptions {
  redis: RedisClient
  notifier: Notifier
  health: RedisHealth
  prefix: string
  /** How long a waiter's place outlives its instance; refreshed while it waits and runs. */
  aliveMs: number
}

/**
 * Send lanes across instances: one queue per client in Redis, served in
 * ticket order, one send at a time. Sends of one instance also keep their
 * order among themselves before they take a ticket. A waiter whose instance
 * dies loses its place once its liveness key expires, so the lane moves on.
 */
export class RedisLanes implements SendLanes {
  private readonly o: RedisLanesOptions
  private readonly local = new MemoryLanes()

  constructor (opts: RedisLanesOptions) {
    this.o = opts
  }

  async run<T> (lane: string, fn: () => Promise<T>): Promise<T> {
    return await this.local.run(lane, async () => await this.inQueue(lane, fn))
  }

  private async inQueue<T> (lane: string, fn: () => Promise<T>): Promise<T> {
    const k = laneKeys(this.o.prefix, lane)
    const member = randomBytes(9).toString('base64url')
    const alive = aliveKey(this.o.prefix, lane, member)
    const alivePrefix = alive.slice(0, alive.length - member.length)
    const { redis, aliveMs } = this.o
    try {
      await JOIN.run(redis, [k.tickets, k.queue, alive], [member, aliveMs, Math.max(aliveMs * 4, 60_000)])
      this.o.health.ok()
    } catch (err) {
      this.o.health.failed(err)
      throw storeDown()
    }
    const keepAlive = setInterval(() => {
      redis.pexpire(alive, aliveMs).catch(() => {})
    }, Math.max(50, Math.floor(aliveMs / 3)))
    keepAlive.unref()
    let watch: Watch | undefined
    try {
      watch = await this.o.notifier.watch(k.notify)
      while (true) {
        let turn: unknown
        try {
          turn = await TURN.run(redis, [k.queue], [member, alivePrefix])
        } catch (err) {
          this.o.health.failed(err)
          throw storeDown()
        }
        // -1: the queue is gone (Redis lost it); nobody else can be ahead of us in it.
        if (turn !== 0) break
        // A waiter ahead that died is noticed when its liveness key expires, hence the timeout.
        await watch.next(Math.max(50, Math.floor(aliveMs / 3)))
      }
      return await fn()
    } finally {
      watch?.close()
      clearInterval(keepAlive)
      LEAVE.run(redis, [k.queue, alive], [member, k.notify]).catch(() => {})
    }
  }
}
