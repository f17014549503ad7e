import { randomBytes } from 'node:crypto'
import { BridgeError, ErrorCode } from '../socket/errors.js'
import type { Kept, ResultCache, ResultKey } from '../socket/requests.js'
import type { ResultFrame } from '../socket/protocol.js'
import type { RedisHealth } from './redis-health.js'
import { keptKeys, resultKeys } from './keys.js'
import type { Notifier, Watch } from './notifier.js'
import { Script, type RedisClient } from './redis.js'

/** Sets the final value (or removes the marker) only while the caller's marker is there. */
const FINISH = new Script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
redis.call('PUBLISH', ARGV[4], '1')
return 1
`, 1)

const REFRESH = new Script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`, 1)

/**
 * Counts a result just kept against its client's budget (RESULT_CACHE_CLIENT_BYTES),
 * after forgetting the ones that have expired since, and gives up the
 * client's oldest until the rest fit: returns the keys of those, for the
 * caller to delete (each in a slot of its own). Times are Redis's.
 */
const COUNT = new Script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
local function split (member)
  local bytes, key = string.match(member, '^(%d+):(.*)$')
  return tonumber(bytes), key
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do total = total - split(m) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
total = total + split(ARGV[1])
local gone = {}
while total > tonumber(ARGV[3]) do
  local oldest = redis.call('ZPOPMIN', KEYS[1])
  if oldest[1] == nil then total = 0 break end
  local bytes, key = split(oldest[1])
  total = total - bytes
  gone[#gone + 1] = key
end
redis.call('SET', KEYS[2], string.format('%.0f', math.max(total, 0)), 'PX', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return gone
`, 2)

/** Removes a result given up for its client's budget, unless the key now holds something else (a request running again). */
const DROP = new Script(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 5) == 'done:' then redis.call('DEL', KEYS[1]) end
return 0
`, 1)

export interface RedisResultCacheOptions {
  redis: RedisClient
  notifier: Notifier
  health: RedisHealth
  prefix: string
  /** How long a result is kept for resends. */
  ttlMs: number
  /** Bytes of results one client keeps at most (RESULT_CACHE_CLIENT_BYTES); past it, its oldest go. */
  clientBytes: number
  /** How long an in-flight marker outlives its instance; refreshed while the request runs. */
  runningMs: number
  /** Longest wait for a request that runs on another instance. */
  waitMs: number
}

export function storeDown (): BridgeError {
  return new BridgeError(ErrorCode.UPSTREAM_UNAVAILABLE, 'the bridge cannot reach its shared store (Redis); resend the request later')
}

/**
 * Results in Redis, shared by every instance: the first to see a request id
 * leaves a "running" marker and calls the upstream; a resend that lands on
 * any instance meanwhile waits for the result, and one that comes later gets
 * it from Redis. The marker is refreshed while the call runs, so when an
 * instance dies mid-call its marker expires and a resend runs the request.
 * Without Redis, nothing runs: the request fails with UPSTREAM_UNAVAILABLE,
 * which is not kept, so the client's resend runs it once Redis is back.
 */
export class RedisResultCache implements ResultCache {
  private readonly o: RedisResultCacheOptions
  private readonly inFlight = new Map<string, Promise<ResultFrame>>()

  constructor (opts: RedisResultCacheOptions) {
    this.o = opts
  }

  /**
   * Redis keeps each result on its own key (its own hash slot); a client's
   * total is bounded by `clientBytes` through an index in the client's own
   * slot (see COUNT), as one instance bounds it in memory.
   */
  async once (key: ResultKey, run: () => Promise<ResultFrame>, keep: (result: ResultFrame) => Kept | undefined): Promise<ResultFrame> {
    const mine = this.inFlight.get(key.request)
    if (mine !== undefined) return await mine
    const p = this.resolve(key, run, keep)
    this.inFlight.set(key.request, p)
    try {
      return await p
    } finally {
      this.inFlight.delete(key.request)
    }
  }

  private async resolve (key: ResultKey, run: () => Promise<ResultFrame>, keep: (result: ResultFrame) => Kept | undefined): Promise<ResultFrame> {
    const k = resultKeys(this.o.prefix, key.request)
    const marker = `running:${randomBytes(9).toString('base64url')}`
    const deadline = Date.now() + this.o.waitMs
    let watch: Watch | undefined
    try {
      while (true) {
        let seen: string | null
        try {
          seen = await this.o.redis.call('SET', k.result, marker, 'PX', this.o.runningMs, 'NX', 'GET') as string | null
          this.o.health.ok()
        } catch (err) {
          this.o.health.failed(err)
          throw storeDown()
        }
        if (seen === null) break
        if (seen.startsWith('done:')) return JSON.parse(seen.slice(5)) as ResultFrame
        if (Date.now() > deadline) throw new BridgeError(ErrorCode.UPSTREAM_TIMEOUT, 'the same request is still running on another instance')
        // Running elsewhere: watch for its end, then look again (the first look only starts the watch).
        if (watch === undefined) watch = await this.o.notifier.watch(k.notify)
        else await watch.next(500)
      }
    } finally {
      watch?.close()
    }
    const refresh = setInterval(() => {
      REFRESH.run(this.o.redis, [k.result], [marker, this.o.runningMs]).catch(() => {})
    }, Math.max(50, Math.floor(this.o.runningMs / 3)))
    refresh.unref()
    let result: ResultFrame
    try {
      result = await run()
    } finally {
      clearInterval(refresh)
    }
    const kept = keep(result)
    try {
      // Written as JSON, as `keep` measured it; a result not kept removes the marker, so a resend runs again.
      const written = await FINISH.run(this.o.redis, [k.result], [marker, kept === undefined ? '' : `done:${kept.json}`, this.o.ttlMs, k.notify])
      if (written === 1 && kept !== undefined) await this.count(key.client, k.result, kept.bytes)
    } catch (err) {
      // The answer goes to the socket all the same; a resend after the marker expires would run again.
      this.o.health.failed(err)
    }
    return result
  }

  /** Counts a kept result against its client's budget, and deletes what that gives up. */
  private async count (client: string, resultKey: string, bytes: number): Promise<void> {
    const kk = keptKeys(this.o.prefix, client)
    const gone = await COUNT.run(this.o.redis, [kk.index, kk.bytes], [`${bytes}:${resultKey}`, this.o.ttlMs, this.o.clientBytes]) as string[]
    await Promise.all(gone.map(async (g) => await DROP.run(this.o.redis, [g], [])))
  }
}
