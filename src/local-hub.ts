import type { CursorCodec, CursorPosition } from './cursor.js'
import type { ChatApi } from './upstream/client.js'
import { Poller, UPSTREAM_PAGE, parseAnswer, type FeedEvent, type PollLog } from './poller.js'
import { FeedLimitError, feedId, type FeedKey, type Hub, type HubStats, type Subscriber, type SubscribeResult } from './hub.js'
import type { PollGate } from './poll-gate.js'

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
  /** Most feeds (upstream polls) kept at once. */
  maxFeeds: number
  /** Paces the start of new upstream polls. */
  gate?: PollGate | undefined
  /** Told of each new upstream event and how many sockets got it. */
  onPublish?: (channel: string, ts: number, sockets: number) => void
}

interface Buffered { seq: number, ts: number, hash: string, frame: string }

interface SubState {
  /** Sequence number of the last frame handed to the socket. */
  lastSeq: number
  /** The socket's queue is full (or it is catching up): frames wait in `recent`. */
  behind: boolean
}

interface Feed {
  key: FeedKey
  poller: Poller
  subs: Map<Subscriber, SubState>
  /** The most recent events, oldest first: resumes and slow sockets are served from here. */
  recent: Buffered[]
  seq: number
  linger: NodeJS.Timeout | undefined
  /** Set while a feed started from a cursor waits for its first upstream answer. */
  starting: { pos: CursorPosition, outcome: Promise<SubscribeResult> } | undefined
}

const OLDER_THAN_KEPT = 'cursor is older than the events kept for this connection'
/** Pages read back from the upstream to bridge a resume to the events in memory. */
const CATCH_UP_PAGES = 8

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
      if (this.feeds.size >= this.o.maxFeeds) throw new FeedLimitError()
      feed = this.createFeed(id, key, resume)
      feed.subs.set(sub, { lastSeq: feed.seq, behind: false })
      return feed.starting === undefined ? { resumed: false } : await this.waitStart(feed.starting.outcome)
    }
    if (feed.linger !== undefined) {
      clearTimeout(feed.linger)
      feed.linger = undefined
    }
    if (resume === undefined) {
      feed.subs.set(sub, { lastSeq: feed.seq, behind: false })
      return { resumed: false }
    }
    const at = feed.recent.findIndex((e) => e.ts === resume.ts && e.hash === resume.hash)
    if (at >= 0) {
      const state = { lastSeq: (feed.recent[at] as Buffered).seq, behind: true }
      feed.subs.set(sub, state)
      this.replay(feed, sub, state)
      return { resumed: true }
    }
    const starting = feed.starting
    if (starting !== undefined && starting.pos.ts === resume.ts && starting.pos.hash === resume.hash) {
      feed.subs.set(sub, { lastSeq: feed.seq, behind: false })
      return await this.waitStart(starting.outcome)
    }
    const position = feed.poller.position
    if (position !== undefined && resume.ts > position) {
      feed.subs.set(sub, { lastSeq: feed.seq, behind: false })
      return { resumed: false, gap: 'cursor is ahead of this connection\'s events' }
    }
    return await this.catchUp(feed, sub, resume)
  }

  unsubscribe (key: FeedKey, sub: Subscriber): void {
    const id = feedId(key)
    const feed = this.feeds.get(id)
    if (feed === undefined || !feed.subs.delete(sub)) return
    if (feed.subs.size > 0) {
      this.pace(feed)
      return
    }
    if (this.o.lingerMs === 0) {
      this.endFeed(id, feed)
      return
    }
    // A feed without sockets keeps polling for a while, so that a quick reconnect resumes from memory.
    feed.poller.resume()
    feed.linger = setTimeout(() => {
      if (feed.subs.size === 0 && this.feeds.get(id) === feed) this.endFeed(id, feed)
    }, this.o.lingerMs)
    feed.linger.unref()
  }

  drained (key: FeedKey, sub: Subscriber): void {
    const feed = this.feeds.get(feedId(key))
    const state = feed?.subs.get(sub)
    if (feed === undefined || state === undefined || !state.behind) return
    this.replay(feed, sub, state)
  }

  stats (): HubStats {
    let subscribers = 0
    let pausedFeeds = 0
    for (const f of this.feeds.values()) {
      subscribers += f.subs.size
      if (f.poller.isPaused) pausedFeeds++
    }
    return { feeds: this.feeds.size, subscribers, pausedFeeds }
  }

  async close (): Promise<void> {
    for (const [id, feed] of this.feeds) this.endFeed(id, feed)
  }

  private createFeed (id: string, key: FeedKey, resume: CursorPosition | undefined): Feed {
    const api = this.o.apis.get(key.channel)
    if (api === undefined) throw new Error(`no channel "${key.channel}"`)
    const log = this.o.log.child({ channel: key.channel, clientId: key.clientId, cid: key.cid })
    let settle: ((o: SubscribeResult) => void) | undefined
    const feed: Feed = {
      key,
      subs: new Map(),
      recent: [],
      seq: 0,
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
        start: resume,
        gate: this.o.gate
      })
    }
    if (resume !== undefined) {
      const outcome = new Promise<SubscribeResult>((resolve) => { settle = resolve })
      feed.starting = { pos: resume, outcome }
      void outcome.then(() => { feed.starting = undefined })
    }
    this.feeds.set(id, feed)
    feed.poller.start()
    return feed
  }

  private async waitStart (outcome: Promise<SubscribeResult>): Promise<SubscribeResult> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<SubscribeResult>((resolve) => {
      timer = setTimeout(() => { resolve({ resumed: false, gap: 'the upstream did not answer in time to resume' }) }, this.o.resumeWaitMs)
    })
    try {
      return await Promise.race([outcome, late])
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * A cursor older than the events in memory: read the upstream from the
   * cursor's time until the oldest event in memory shows up, send what lies
   * between, then continue from memory. Live events arriving meanwhile wait
   * in `recent`, so the order holds.
   */
  private async catchUp (feed: Feed, sub: Subscriber, resume: CursorPosition): Promise<SubscribeResult> {
    const oldest = feed.recent[0]
    const state: SubState = { lastSeq: feed.seq, behind: true }
    feed.subs.set(sub, state)
    const api = this.o.apis.get(feed.key.channel) as ChatApi
    const between: string[] = []
    const seen = new Set<string>()
    let found = false
    let foundCursor = false
    let ts = resume.ts
    try {
      for (let page = 0; page < CATCH_UP_PAGES && oldest !== undefined && !found; page++) {
        const events = parseAnswer(await api.events({ clientId: feed.key.clientId, cid: feed.key.cid, all: feed.key.all, ts }))
        for (const ev of events) {
          if (!foundCursor) {
            foundCursor = ev.ts === resume.ts && ev.hash === resume.hash
            continue
          }
          if (ev.ts === oldest.ts && ev.hash === oldest.hash) { found = true; break }
          if (seen.has(ev.hash)) continue
          seen.add(ev.hash)
          between.push(this.frameOf(feed, ev))
        }
        if (!foundCursor || events.length < UPSTREAM_PAGE) break
        ts = (events.at(-1) as FeedEvent).ts
      }
    } catch {
      found = false
    }
    if (feed.subs.get(sub) !== state) return { resumed: false, gap: 'socket closed' }
    if (!found || oldest === undefined) {
      // Continue live from here; the client reloads what it missed from the history.
      state.lastSeq = feed.seq
      state.behind = false
      return { resumed: false, gap: foundCursor ? OLDER_THAN_KEPT : 'the event of this cursor is no longer kept upstream' }
    }
    for (const frame of between) sub.deliver(frame)
    state.lastSeq = oldest.seq - 1
    this.replay(feed, sub, state)
    return { resumed: true }
  }

  private frameOf (feed: Feed, ev: FeedEvent): string {
    const cursor = this.o.cursors.encode(feed.key, ev)
    return `{"type":"event","cursor":"${cursor}","event":${ev.json}}`
  }

  private publish (feed: Feed, events: FeedEvent[]): void {
    for (const ev of events) {
      const e: Buffered = { seq: ++feed.seq, ts: ev.ts, hash: ev.hash, frame: this.frameOf(feed, ev) }
      feed.recent.push(e)
      if (feed.recent.length > Math.max(this.o.bufferSize, 1)) feed.recent.shift()
      let sent = 0
      for (const [sub, state] of feed.subs) {
        if (state.behind) continue
        state.lastSeq = e.seq
        sent++
        if (!sub.deliver(e.frame)) state.behind = true
      }
      this.o.onPublish?.(feed.key.channel, ev.ts, sent)
    }
    this.pace(feed)
  }

  /** Sends a socket what it has not had from `recent`; one that fell out of it must resume. */
  private replay (feed: Feed, sub: Subscriber, state: SubState): void {
    const first = feed.recent[0]
    if (first !== undefined && first.seq > state.lastSeq + 1) {
      feed.subs.delete(sub)
      sub.tooSlow()
      this.pace(feed)
      return
    }
    let i = first === undefined ? 0 : state.lastSeq + 1 - first.seq
    state.behind = false
    while (i < feed.recent.length) {
      const e = feed.recent[i++] as Buffered
      state.lastSeq = e.seq
      if (!sub.deliver(e.frame)) {
        state.behind = true
        break
      }
    }
    this.pace(feed)
  }

  /**
   * Lossless back-pressure: when every socket of a feed is behind, the feed
   * stops polling (the upstream keeps the events) until one has room again.
   */
  private pace (feed: Feed): void {
    let anyReady = feed.subs.size === 0
    for (const state of feed.subs.values()) if (!state.behind) { anyReady = true; break }
    if (anyReady) feed.poller.resume()
    else feed.poller.pause()
  }

  private rejectChannel (channel: string): void {
    for (const [id, feed] of this.feeds) {
      if (feed.key.channel !== channel) continue
      const subs = [...feed.subs.keys()]
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
