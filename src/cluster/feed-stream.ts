import type { CursorPosition } from '../feed/cursor.js'
import type { FeedEvent } from '../feed/event.js'
import type { FeedKeys } from './keys.js'
import { Script, type RedisClient } from './redis.js'

/** One event in a feed's Redis Stream, and the event published right before it. */
export interface StreamEntry extends FeedEvent {
  id: string
  /** The event before this one in the publisher's order; undefined when the publisher did not know it. */
  prev: CursorPosition | undefined
}

/** The greatest sequence part of a stream ID: `(<ms>-MAX_SEQ` reads from the next millisecond on. */
export const MAX_SEQ = '18446744073709551615'

/** Entries looked through from a cursor's time to find its event. */
const FIND_SPAN = 500

/**
 * Takes the lease if nobody holds it, or if it is still held under `stale`
 * (the token of an instance whose alive key is gone, or this owner's own
 * after its alive key lapsed): a compare-and-set, so of several bidders that
 * found the same holder dead, and the holder taking its lease back, one
 * wins. Every lease taken has a new fencing number, and is announced on the
 * notify channel. Returns the token and the last event of the stream, or
 * the holder.
 */
const ACQUIRE = new Script(`
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[2] then return {0, holder} end
local fence = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local token = ARGV[1] .. ':' .. fence
redis.call('SET', KEYS[1], token, 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], 'lease:' .. token)
local replaced = 0
if holder then replaced = 1 end
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if last[1] then return {1, token, replaced, last[1][1], last[1][2]} end
return {1, token, replaced}
`, 3)

/**
 * Keeps the feed's keys from expiring while the caller's token is the lease
 * (the lease's validity is its instance's alive key, not this expiry).
 * 1 renewed; 0 another instance holds the lease; -1 nobody does (it
 * expired, or Redis lost it).
 */
const RENEW = new Script(`
local holder = redis.call('GET', KEYS[1])
if holder == false then return -1 end
if holder ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
`, 3)

/** Gives the lease up, and keeps the stream for its full time from now. */
const RELEASE = new Script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PUBLISH', ARGV[2], 'release')
return 1
`, 3)

/**
 * Appends events only while the caller's token is the lease: the fence check
 * and the appends are one atomic step, so an owner that was paused past its
 * lease cannot publish after another took over. Stream IDs take the event's
 * upstream millisecond, so a cursor's event is found by its time.
 *
 * The stream keeps at most ARGV[2] entries (roughly) and ARGV[6] bytes of
 * events' JSON, the newest always: each entry carries `b`, the bytes
 * appended up to and including it, so the bytes kept are the last `b` less
 * where the first entry began, and the oldest go until it fits. An entry
 * without `b` (written before it existed) leaves the stream to its count.
 */
const PUBLISH = new Script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local function field (fields, name)
  for i = 1, #fields, 2 do if fields[i] == name then return fields[i + 1] end end
end
local lastMs, total = 0, 0
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if last[1] then
  lastMs = tonumber(string.match(last[1][1], '^%d+'))
  total = tonumber(field(last[1][2], 'b') or '0') or 0
end
local id
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  local b = 7 + i * 4
  local ms = math.max(tonumber(ARGV[b]), lastMs)
  total = total + string.len(ARGV[b + 2])
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], string.format('%.0f', ms) .. '-*',
    't', ARGV[b], 'h', ARGV[b + 1], 'j', ARGV[b + 2], 'p', ARGV[b + 3], 'b', string.format('%.0f', total))
  lastMs = ms
end
local floor = total - tonumber(ARGV[6])
local function start (entry)
  local upTo = tonumber(field(entry[2], 'b') or '')
  if upTo == nil then return nil end
  return upTo - string.len(field(entry[2], 'j') or '')
end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
local from = first and start(first)
if id ~= nil and from ~= nil and from < floor then
  local after = '-'
  local cut
  while cut == nil do
    local rows = redis.call('XRANGE', KEYS[2], after, '+', 'COUNT', 64)
    for _, row in ipairs(rows) do
      local s = start(row)
      if row[1] == id or (s ~= nil and s >= floor) then cut = row[1] break end
    end
    if cut == nil then after = '(' .. rows[#rows][1] end
  end
  redis.call('XTRIM', KEYS[2], 'MINID', cut)
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], id)
return id
`, 2)

export interface FeedStreamsOptions {
  /** REDIS_LEASE_MS: the lease and fence keys outlive the stream by this much. */
  leaseMs: number
  /** REDIS_STREAM_MAXLEN: entries kept, roughly. */
  maxLen: number
  /** REDIS_STREAM_MAX_BYTES: bytes of the events' JSON kept, the newest event whatever its size. */
  maxBytes: number
  ttlMs: number
}

function encodePos (p: CursorPosition | undefined): string {
  return p === undefined ? '' : `${p.ts}.${p.hash}`
}

function decodePos (s: string | undefined): CursorPosition | undefined {
  if (s === undefined || s === '') return undefined
  const dot = s.indexOf('.')
  return { ts: Number(s.slice(0, dot)), hash: s.slice(dot + 1) }
}

function entryOf (id: string, fields: string[]): StreamEntry {
  const f: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string
  return { id, ts: Number(f.t), hash: f.h ?? '', json: f.j ?? 'null', prev: decodePos(f.p) }
}

/** The instance a lease token `<instance>:<fence>` names (instance IDs are base64url: no colon). */
export function instanceOf (token: string): string {
  return token.slice(0, Math.max(0, token.lastIndexOf(':')))
}

/** The fencing number of a lease token. */
export function fenceOf (token: string): number {
  return Number(token.slice(token.lastIndexOf(':') + 1))
}

/** What a bid for a lease got: the lease (`replaced`: it took the place of the stale token), or the name of its holder. */
export type Bid = { won: true, token: string, last: StreamEntry | undefined, replaced: boolean } | { won: false, holder: string }

/** The leases and streams of feeds in Redis: every command the clustered hub sends about them. */
export class FeedStreams {
  private readonly redis: RedisClient
  private readonly o: FeedStreamsOptions

  constructor (redis: RedisClient, opts: FeedStreamsOptions) {
    this.redis = redis
    this.o = opts
  }

  /** How long the lease and fence keys outlive their last renewal: as long as the stream, and a lease. */
  private get keysTtlMs (): number { return this.o.ttlMs + this.o.leaseMs }

  /** Bids for the lease: won if nobody holds it, or if its holder still is `stale`. */
  async acquire (k: FeedKeys, instance: string, stale = ''): Promise<Bid> {
    const r = await ACQUIRE.run(this.redis, [k.lease, k.fence, k.stream], [instance, stale, this.keysTtlMs, k.notify]) as [number, string, number?, string?, string[]?]
    if (r[0] === 0) return { won: false, holder: r[1] }
    const [, token, replaced, id, fields] = r
    return { won: true, token, replaced: replaced === 1, last: id === undefined ? undefined : entryOf(id, fields ?? []) }
  }

  /** The token of the lease's holder, or undefined when nobody holds it. */
  async holder (k: FeedKeys): Promise<string | undefined> {
    return await this.redis.get(k.lease) ?? undefined
  }

  async renew (k: FeedKeys, token: string): Promise<'renewed' | 'taken' | 'vacant'> {
    const r = await RENEW.run(this.redis, [k.lease, k.stream, k.fence], [token, this.o.ttlMs, this.keysTtlMs])
    return r === 1 ? 'renewed' : r === 0 ? 'taken' : 'vacant'
  }

  async release (k: FeedKeys, token: string): Promise<void> {
    await RELEASE.run(this.redis, [k.lease, k.stream, k.fence], [token, k.notify, this.o.ttlMs, this.keysTtlMs])
  }

  /** Appends `events` after `prev`; the ID of the last one, or undefined when the token no longer holds the lease. */
  async publish (k: FeedKeys, token: string, prev: CursorPosition | undefined, events: FeedEvent[]): Promise<string | undefined> {
    const args: Array<string | number> = [token, this.o.maxLen, this.o.ttlMs, k.notify, events.length, this.o.maxBytes]
    let before = prev
    for (const e of events) {
      args.push(e.ts, e.hash, e.json, encodePos(before))
      before = { ts: e.ts, hash: e.hash }
    }
    const id = await PUBLISH.run(this.redis, [k.lease, k.stream], args) as string | null
    return id ?? undefined
  }

  /** Tells every instance reading the feed something that is not an event ("fatal"). */
  async announce (k: FeedKeys, message: string): Promise<void> {
    await this.redis.publish(k.notify, message)
  }

  /** Up to `count` entries after the ID `after`. */
  async after (k: FeedKeys, after: string, count: number): Promise<StreamEntry[]> {
    const rows = await this.redis.xrange(k.stream, `(${after}`, '+', 'COUNT', count)
    return rows.map(([id, fields]) => entryOf(id, fields))
  }

  /** The oldest entry kept, in a list of one (or none). */
  async first (k: FeedKeys): Promise<StreamEntry[]> {
    const rows = await this.redis.xrange(k.stream, '-', '+', 'COUNT', 1)
    return rows.map(([id, fields]) => entryOf(id, fields))
  }

  async last (k: FeedKeys): Promise<StreamEntry | undefined> {
    const rows = await this.redis.xrevrange(k.stream, '+', '-', 'COUNT', 1)
    const row = rows[0]
    return row === undefined ? undefined : entryOf(row[0], row[1])
  }

  /** The entry of an event, with the events of the same millisecond up to it; undefined when the stream has no longer got it. */
  async find (k: FeedKeys, pos: CursorPosition): Promise<{ entry: StreamEntry, sameMs: StreamEntry[] } | undefined> {
    // An event stored late, with an earlier stamp, has an ID later than its time: look a little further on.
    const rows = await this.redis.xrange(k.stream, `${pos.ts}-0`, '+', 'COUNT', FIND_SPAN)
    const entries = rows.map(([id, fields]) => entryOf(id, fields))
    const at = entries.findIndex((e) => e.ts === pos.ts && e.hash === pos.hash)
    if (at < 0) return undefined
    return { entry: entries[at] as StreamEntry, sameMs: entries.slice(0, at + 1).filter((e) => e.ts === pos.ts) }
  }
}
