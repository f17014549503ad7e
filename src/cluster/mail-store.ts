import { createHash } from 'node:crypto'
import type { MailboxEntry, MailListener, MailStore, NewMail } from '../webhook/mailbox.js'
import type { RedisHealth } from './redis-health.js'
import type { Notifier } from './notifier.js'
import { Script, type RedisClient } from './redis.js'
import { clientKey } from '../lib/client-key.js'

export interface RedisMailOptions {
  redis: RedisClient
  notifier: Notifier
  health: RedisHealth
  prefix: string
  retentionMs: number
  perClient: number
}

/**
 * Webhook mail kept in Redis, so that a delivery taken by any instance
 * reaches the client's sockets on every instance and survives restarts.
 * Each client has a stream of objects (its entry ids are the positions), a
 * key per object hash that marks a retried delivery, and a floor below which
 * entries were trimmed. Instances with sockets of a client watch its
 * channel; a message there is a hint to read the stream again.
 */
const ADD = new Script(`
local stream, floor, notify = KEYS[1], KEYS[2], KEYS[3]
local maxlen, ttl, seenPrefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local added = {}
for i = 4, #ARGV, 4 do
  if redis.call('SET', seenPrefix .. ARGV[i], '1', 'NX', 'PX', ttl) then
    if redis.call('XLEN', stream) >= maxlen then
      local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
      if #first > 0 then redis.call('SET', floor, first[1][1], 'PX', ttl) end
      redis.call('XTRIM', stream, 'MAXLEN', maxlen - 1)
    end
    redis.call('XADD', stream, '*', 'hash', ARGV[i], 'ts', ARGV[i + 1], 'q', ARGV[i + 2], 'json', ARGV[i + 3])
    added[#added + 1] = ARGV[i]
  end
end
if #added > 0 then
  redis.call('PEXPIRE', stream, ttl)
  redis.call('PUBLISH', notify, '1')
end
return added
`, 3)

function tag (text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 22)
}

/** A stream id `ms-seq` as a mailbox position, and back. */
export function idToPos (id: string): number {
  const [ms, seq] = id.split('-') as [string, string]
  return Number(ms) * 1000 + Math.min(Number(seq), 999)
}
function posToId (pos: number): string {
  return `${Math.floor(pos / 1000)}-${pos % 1000}`
}

/** How far Redis's clock may be from ours; a new connection's mark sits this much in the past. */
const CLOCK_MARGIN_MS = 2000

export class RedisMailStore implements MailStore {
  private readonly o: RedisMailOptions
  private listener: MailListener | undefined
  /** Clients with sockets here: how many feeds, and the last position delivered. */
  private readonly watched = new Map<string, { channel: string, clientId: string, feeds: number, last: number, reading: boolean, again: boolean, hint: () => void }>()

  constructor (o: RedisMailOptions) {
    this.o = o
    // Hints may be lost while Redis reconnects: read every watched client again.
    o.notifier.onReconnect(() => { for (const w of this.watched.values()) this.read(w) })
  }

  private keys (channel: string, clientId: string): { stream: string, floor: string, notify: string, seen: string } {
    const base = `${this.o.prefix}mail:{${tag(clientKey(channel, clientId))}}`
    return { stream: `${base}:stream`, floor: `${base}:floor`, notify: `${base}:notify`, seen: `${base}:seen:` }
  }

  mark (): number {
    return (Date.now() - CLOCK_MARGIN_MS) * 1000
  }

  onMail (listener: MailListener): void { this.listener = listener }

  /** Resolves with the mail that was new; the script answers with their hashes. */
  async add (channel: string, clientId: string, mail: NewMail[]): Promise<NewMail[]> {
    const k = this.keys(channel, clientId)
    const args: Array<string | number> = [this.o.perClient, this.o.retentionMs, k.seen]
    for (const m of mail) args.push(m.hash, m.ts, m.questionId ?? '', m.json)
    try {
      const added = new Set(await ADD.run(this.o.redis, [k.stream, k.floor, k.notify], args) as string[])
      this.o.health.ok()
      return mail.filter((m) => added.delete(m.hash))
    } catch (err) {
      this.o.health.failed(err)
      throw err
    }
  }

  async after (channel: string, clientId: string, pos: number): Promise<MailboxEntry[] | null> {
    const k = this.keys(channel, clientId)
    const [floor, entries] = await Promise.all([this.o.redis.get(k.floor), this.o.redis.xrange(k.stream, `(${posToId(pos)}`, '+')])
    const lowest = Math.max(floor === null ? 0 : idToPos(floor), (Date.now() - this.o.retentionMs) * 1000)
    if (pos > 0 && pos < lowest) return null
    return entries.map(([id, fields]) => entryOf(id, fields))
  }

  /** A client has a feed here: deliver its new mail as it comes. */
  watch (channel: string, clientId: string): void {
    const key = clientKey(channel, clientId)
    const known = this.watched.get(key)
    if (known !== undefined) {
      known.feeds++
      return
    }
    const w = { channel, clientId, feeds: 1, last: this.mark(), reading: false, again: false, hint: () => { this.read(w) } }
    this.watched.set(key, w)
    void this.o.notifier.listen(this.keys(channel, clientId).notify, w.hint).then(() => { this.read(w) })
  }

  unwatch (channel: string, clientId: string): void {
    const key = clientKey(channel, clientId)
    const w = this.watched.get(key)
    if (w === undefined || --w.feeds > 0) return
    this.watched.delete(key)
    this.o.notifier.unlisten(this.keys(channel, clientId).notify, w.hint)
  }

  /** Reads what came after the last position delivered here; one read at a time per client. */
  private read (w: { channel: string, clientId: string, last: number, reading: boolean, again: boolean }): void {
    if (w.reading) {
      w.again = true
      return
    }
    w.reading = true
    const k = this.keys(w.channel, w.clientId)
    this.o.redis.xrange(k.stream, `(${posToId(w.last)}`, '+').then((entries) => {
      this.o.health.ok()
      const mail = entries.map(([id, fields]) => entryOf(id, fields))
      const newest = mail.at(-1)
      if (newest !== undefined) {
        w.last = newest.pos
        this.listener?.(w.channel, w.clientId, mail)
      }
    }, (err: unknown) => { this.o.health.failed(err) }).finally(() => {
      w.reading = false
      if (w.again) {
        w.again = false
        this.read(w)
      }
    })
  }
}

function entryOf (id: string, fields: string[]): MailboxEntry {
  const f: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string
  return { pos: idToPos(id), ts: Number(f.ts), hash: f.hash ?? '', json: f.json ?? '{}', questionId: f.q === '' || f.q === undefined ? undefined : f.q }
}
