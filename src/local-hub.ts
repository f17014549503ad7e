import type { CursorCodec, CursorPosition } from './cursor.js'
import type { ChatApi } from './upstream/client.js'
import { Poller, type FeedEvent, type PollLog } from './poller.js'
import { feedId, type FeedKey, type Hub, type HubStats, type Subscriber, type SubscribeResult } from './hub.js'

export interface LocalHubOptions {
  apis: Map<string, ChatApi>
  cursors: CursorCodec
  log: PollLog & { child: (b: object) => PollLog }
  lingerMs: number
  bufferSize: number
  backoffBaseMs: number
  backoffMaxMs: number
  /** Longest wait for the upstream's first answer when a socket resumes on a new feed. */
  resumeWaitMs: number
  /** Told of each new upstream event and how many sockets got it. */
  onPublish?: (channel: string, ts: number, sockets: number) => void
}

interface Buffered { ts: number, hash: string, frame: string }

interface Feed {
  key: FeedKey
  poller: Poller
  subs: Set<Subscriber>
  /** The most recent events, oldest first, for resumes served from memory. */
  recent: Buffered[]
  linger: NodeJS.Timeout | undefined
  /** Set while a feed started from a cursor waits for its first upstream answer. */
  starting: { pos: CursorPosition, outcome: Promise<{ resumed: boolean, gap?: string }> } | undefined
}

/** The in-process hub: one Poller per key, shared by every socket of the key. */
export class LocalHub implements Hub {
  private readonly o: LocalHubOptions
  private readonly feeds = new Map<string, Feed>()

  constructor (opts: LocalHubOptions) {
    this.o = opts
  }

  async subscribe (key: FeedKey, sub: Subscriber, resume?: CursorPosition): Promise<SubscribeResult> {
    const id = feedId(key)
    let feed = this.feeds.get(id)
    if (feed === undefined) {
      feed = this.createFeed(id, key, resume)
      feed.subs.add(sub)
      if (feed.starting === undefined) return { resumed: false, backlog: [] }
      return { ...(await this.waitStart(feed)), backlog: [] }
    }
    if (feed.linger !== undefined) {
      clearTimeout(feed.linger)
      feed.linger = undefined
    }
    if (resume === undefined) {
      feed.subs.add(sub)
      return { resumed: false, backlog: [] }
    }
    const at = feed.recent.findIndex((e) => e.ts === resume.ts && e.hash === resume.hash)
    if (at >= 0) {
      feed.subs.add(sub)
      return { resumed: true, backlog: feed.recent.slice(at + 1).map((e) => e.frame) }
    }
    if (feed.starting !== undefined && feed.starting.pos.ts === resume.ts && feed.starting.pos.hash === resume.hash) {
      feed.subs.add(sub)
      return { ...(await this.waitStart(feed)), backlog: [] }
    }
    feed.subs.add(sub)
    const position = feed.poller.position
    if (position !== undefined && resume.ts > position) {
      return { resumed: false, gap: 'cursor is ahead of this connection\'s events', backlog: [] }
    }
    return { resumed: false, gap: 'cursor is older than the events this bridge keeps for the connection', backlog: [] }
  }

  unsubscribe (key: FeedKey, sub: Subscriber): void {
    const id = feedId(key)
    const feed = this.feeds.get(id)
    if (feed === undefined || !feed.subs.delete(sub) || feed.subs.size > 0) return
    if (this.o.lingerMs === 0) {
      this.endFeed(id, feed)
      return
    }
    feed.linger = setTimeout(() => {
      if (feed.subs.size === 0 && this.feeds.get(id) === feed) this.endFeed(id, feed)
    }, this.o.lingerMs)
    feed.linger.unref()
  }

  stats (): HubStats {
    let subscribers = 0
    for (const f of this.feeds.values()) subscribers += f.subs.size
    return { feeds: this.feeds.size, subscribers }
  }

  async close (): Promise<void> {
    for (const [id, feed] of this.feeds) this.endFeed(id, feed)
  }

  private createFeed (id: string, key: FeedKey, resume: CursorPosition | undefined): Feed {
    const api = this.o.apis.get(key.channel)
    if (api === undefined) throw new Error(`no channel "${key.channel}"`)
    const log = this.o.log.child({ channel: key.channel, clientId: key.clientId, cid: key.cid })
    let settle: ((o: { resumed: boolean, gap?: string }) => void) | undefined
    const feed: Feed = {
      key,
      subs: new Set(),
      recent: [],
      linger: undefined,
      starting: undefined,
      poller: new Poller({
        fetch: async (ts, signal) => await api.events({ clientId: key.clientId, cid: key.cid, all: key.all, ts }, signal),
        onEvents: (events) => { this.publish(feed, events) },
        onFatal: () => { this.rejectChannel(key.channel) },
        onStart: (outcome) => { settle?.(outcome) },
        log,
        backoffBaseMs: this.o.backoffBaseMs,
        backoffMaxMs: this.o.backoffMaxMs,
        start: resume
      })
    }
    if (resume !== undefined) {
      const outcome = new Promise<{ resumed: boolean, gap?: string }>((resolve) => { settle = resolve })
      feed.starting = { pos: resume, outcome }
      void outcome.then(() => { feed.starting = undefined })
    }
    this.feeds.set(id, feed)
    feed.poller.start()
    return feed
  }

  private async waitStart (feed: Feed): Promise<{ resumed: boolean, gap?: string }> {
    const starting = feed.starting
    if (starting === undefined) return { resumed: false, gap: 'resume position was settled by another socket' }
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<{ resumed: boolean, gap: string }>((resolve) => {
      timer = setTimeout(() => { resolve({ resumed: false, gap: 'the upstream did not answer in time to resume' }) }, this.o.resumeWaitMs)
    })
    try {
      return await Promise.race([starting.outcome, late])
    } finally {
      clearTimeout(timer)
    }
  }

  private publish (feed: Feed, events: FeedEvent[]): void {
    for (const ev of events) {
      const cursor = this.o.cursors.encode(feed.key, ev)
      const frame = `{"type":"event","cursor":"${cursor}","event":${ev.json}}`
      if (this.o.bufferSize > 0) {
        feed.recent.push({ ts: ev.ts, hash: ev.hash, frame })
        if (feed.recent.length > this.o.bufferSize) feed.recent.shift()
      }
      for (const sub of feed.subs) sub.deliver(frame)
      this.o.onPublish?.(feed.key.channel, ev.ts, feed.subs.size)
    }
  }

  private rejectChannel (channel: string): void {
    for (const [id, feed] of this.feeds) {
      if (feed.key.channel !== channel) continue
      const subs = [...feed.subs]
      this.endFeed(id, feed)
      for (const sub of subs) sub.upstreamRejected()
    }
  }

  private endFeed (id: string, feed: Feed): void {
    if (feed.linger !== undefined) clearTimeout(feed.linger)
    feed.poller.stop()
    feed.subs.clear()
    this.feeds.delete(id)
  }
}
