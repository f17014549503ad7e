import { randomBytes } from 'node:crypto'
import { MemoryLanes, type SendLanes } from '../socket/requests.js'
import type { RedisHealth } from './redis-health.js'
import { laneKeys } from './keys.js'
import type { Notifier, Watch } from './notifier.js'
import { Script, type RedisClient } from './redis.js'
import { storeDown } from './result-cache.js'
import { notDispatched } from '../upstream/call-queue.js'

/** Redis's own clock in ms, so that instances whose clocks differ agree on liveness. */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`

/** Takes a ticket: the queue is ordered by arrival at Redis. KEYS: tickets, queue, alive. */
const JOIN = new Script(`${NOW}
local ticket = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], ticket, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], now + tonumber(ARGV[2]))
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return ticket
`, 3)

/**
 * 1 when the caller is first in the queue, and keeps it alive. Waiters ahead
 * whose instance died (their liveness passed) are dropped on the way.
 * KEYS: queue, alive.
 */
const TURN = new Script(`${NOW}
redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[2]))
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if head == nil then return -1 end
  if head == ARGV[1] then return 1 end
  local alive = tonumber(redis.call('HGET', KEYS[2], head) or '0')
  if alive > now then return 0 end
  redis.call('ZREM', KEYS[1], head)
  redis.call('HDEL', KEYS[2], head)
end
`, 2)

/** Keeps a waiter (or the running send) alive. KEYS: alive. */
const ALIVE = new Script(`${NOW}
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2])) end
return 1
`, 1)

/** KEYS: queue, alive. */
const LEAVE = new Script(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
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
  /** Sends of one client waiting in this instance at most (SEND_QUEUE_PER_CLIENT). */
  queuePerClient: number
}

/**
 * Send lanes across instances: one queue per client in Redis, served in
 * ticket order, one send at a time. Sends of one instance also keep their
 * order among themselves before they take a ticket. A waiter whose instance
 * dies loses its place once its liveness (kept by Redis's clock) passes, so
 * the lane moves on. The local lanes bound the sends waiting in this
 * instance; a send still waiting at its deadline leaves the queue unsent.
 */
export class RedisLanes implements SendLanes {
  private readonly o: RedisLanesOptions
  private readonly local: MemoryLanes

  constructor (opts: RedisLanesOptions) {
    this.o = opts
    this.local = new MemoryLanes(opts.queuePerClient)
  }

  async run<T> (lane: string, fn: () => Promise<T>, deadline?: number): Promise<T> {
    return await this.local.run(lane, async () => await this.inQueue(lane, fn, deadline ?? Infinity), deadline)
  }

  private async inQueue<T> (lane: string, fn: () => Promise<T>, deadline: number): Promise<T> {
    const k = laneKeys(this.o.prefix, lane)
    const member = randomBytes(9).toString('base64url')
    const { redis, aliveMs } = this.o
    try {
      await JOIN.run(redis, [k.tickets, k.queue, k.alive], [member, aliveMs, Math.max(aliveMs * 4, 60_000)])
      this.o.health.ok()
    } catch (err) {
      this.o.health.failed(err)
      throw storeDown()
    }
    const keepAlive = setInterval(() => {
      ALIVE.run(redis, [k.alive], [member, aliveMs]).catch(() => {})
    }, Math.max(50, Math.floor(aliveMs / 3)))
    keepAlive.unref()
    let watch: Watch | undefined
    try {
      watch = await this.o.notifier.watch(k.notify)
      while (true) {
        let turn: unknown
        try {
          turn = await TURN.run(redis, [k.queue, k.alive], [member, aliveMs])
        } catch (err) {
          this.o.health.failed(err)
          throw storeDown()
        }
        // -1: the queue is gone (Redis lost it); nobody else can be ahead of us in it.
        if (turn !== 0) break
        const left = deadline - Date.now()
        if (left <= 0) throw notDispatched('behind the client\'s other sends')
        // A waiter ahead that died is noticed when its liveness passes, hence the timeout.
        await watch.next(Math.min(left, Math.max(50, Math.floor(aliveMs / 3))))
      }
      return await fn()
    } finally {
      watch?.close()
      clearInterval(keepAlive)
      LEAVE.run(redis, [k.queue, k.alive], [member, k.notify]).catch(() => {})
    }
  }
}
