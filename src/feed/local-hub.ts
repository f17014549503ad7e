import { samePosition, type CursorCodec, type CursorPosition, type StreamPosition } from './cursor.js'
import { readAfter } from './catch-up.js'
import { within } from '../lib/deadline.js'
import { samePoll, type FeedEvent } from './event.js'
import type { ChatApi } from '../upstream/chat-api.js'
import { Poller, type PollerContext, type PollerSink } from './poller.js'
import { ChannelRefusedError, FeedLimitError, feedId, type FeedKey, type Hub, type HubStats, type Subscriber, type SubscribeResult } from './hub.js'
import type { PollGate } from './poll-gate.js'
import { StreakLog } from './streak-log.js'
import type { MailStore, MailboxEntry } from '../webhook/mailbox.js'
import { answerId, type Echoes } from '../webhook/echoes.js'
import type { Log } from '../lib/log.js'

export interface LocalHubOptions {
  apis: Map<string, ChatApi>
  cursors: CursorCodec
  log: Log & { child: (b: object) => Log }
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
  /** Webhook deliveries kept per client, and the answers seen by each source; absent when webhooks are off. */
  webhooks?: { mailbox: MailStore, echoes: Echoes } | undefined
  /** Told of each new upstream event and how many sockets got it. */
  onPublish?: (channel: string, ts: number, sockets: number) => void
  /** Makes the source of each feed's upstream events; by default a Poller of the feed's own. */
  source?: FeedSourceFactory | undefined
}

/**
 * Where a feed's upstream events come from: its own upstream long poll (a
 * Poller), or, in a cluster, a stream that one instance polls for all.
 */
export interface FeedSource {
  start: () => void
  stop: () => void
  /** Flow control: hand over nothing until resume(); nothing is lost meanwhile. */
  pause: () => void
  resume: () => void
  /** The upstream time of the last event handed over. */
  readonly position: number | undefined
  readonly isPaused: boolean
}

export interface FeedSourceOptions {
  key: FeedKey
  /**
   * Where the feed's events begin: right after this delivered event, or,
   * with an empty hash, with every event stamped from this upstream time on
   * (a new connection, or a resume from before its first event).
   */
  start: CursorPosition
  /** Events the client's other connections had before this one began, stamped at or after its start. */
  before?: CursorPosition[]
  log: Log
  /** The upstream knows the connection now (its first poll reached it): events from here on will come. */
  onListening: () => void
  /** New events, in upstream order, each once. */
  onEvents: (events: FeedEvent[]) => void
  /** The upstream refused the channel token. */
  onFatal: (err?: { message: string }) => void
  /** Whether the events right after `start` follow; called once, when known, if `start` was given. */
  onStart: (outcome: SubscribeResult) => void
  /** Events after the last one handed over can no longer be had: every socket of the feed must resume. */
  onGap: (reason: string) => void
}

export type FeedSourceFactory = (o: FeedSourceOptions) => FeedSource

interface Buffered {
  seq: number
  kind: 'poll' | 'mail'
  /** The stream position after this frame: what its cursor names. */
  pos: StreamPosition
  /** The stream position before this frame. */
  before: StreamPosition
  ts: number
  frame: string
}

interface SubState {
  /** Sequence number of the last frame handed to the socket. */
  lastSeq: number
  /** The socket's queue is full (or it is catching up): frames wait in `recent`. */
  behind: boolean
}

/**
 * One upstream feed and the sockets that share it. It is also what its
 * source reports to (FeedSourceOptions), through methods rather than a
 * closure each, since an idle client costs one of these.
 */
class Feed implements FeedSourceOptions, PollerSink, Log {
  readonly key: FeedKey
  readonly id: string
  private readonly hub: LocalHub
  /** Where the source starts (see FeedSourceOptions.start). */
  readonly start: CursorPosition
  before: CursorPosition[] | undefined
  source!: FeedSource
  subs = new Map<Subscriber, SubState>()
  /** The most recent events, oldest first: resumes and slow sockets are served from here. */
  recent: Buffered[] = []
  seq = 0
  linger: NodeJS.Timeout | undefined
  /** Set while a feed started from a cursor waits for its first upstream answer. */
  starting: { pos: StreamPosition, outcome: Promise<SubscribeResult> } | undefined
  /** Resolves when the upstream knows the connection; undefined once it does. */
  listening: Promise<void> | undefined
  private heard: (() => void) | undefined
  /** The position of the last frame published. */
  pos: StreamPosition
  /** While a new feed reads the mail that came while its client was away, live mail waits here. */
  mailHold: MailboxEntry[] | undefined
  private settle: ((o: SubscribeResult) => void) | undefined
  /** The feed's child logger, made on its first line: most feeds never log. */
  private child: Log | undefined

  /**
   * A new feed (no `resume`) starts at `upstreamNow`, the upstream's time as
   * low as the bridge can know it, so its first poll asks for everything from
   * the welcome on; a cursor from before any event names a time in the same way.
   */
  constructor (hub: LocalHub, id: string, key: FeedKey, resume: StreamPosition | undefined, webhookMark: number, upstreamNow: number) {
    this.hub = hub
    this.id = id
    this.key = key
    this.start = resume === undefined ? { ts: upstreamNow, hash: '' } : resume.poll ?? { ts: 0, hash: '' }
    // A new feed's webhook position is "now": a cursor from it never brings back older mail.
    this.pos = { poll: resume === undefined ? this.start : resume.poll, webhook: resume?.webhook ?? webhookMark }
    this.listening = new Promise((resolve) => { this.heard = resolve })
    if (resume !== undefined) {
      const outcome = this.start.hash !== ''
        ? new Promise<SubscribeResult>((resolve) => { this.settle = resolve })
        : this.listening.then(() => ({ resumed: true }))
      this.starting = { pos: resume, outcome }
      void outcome.then(() => { this.starting = undefined })
    }
  }

  get log (): Log { return this }
  warn (obj: object, msg: string): void { this.logger().warn(obj, msg) }
  info (obj: object, msg: string): void { this.logger().info(obj, msg) }
  private logger (): Log {
    return (this.child ??= this.hub.childLog({ channel: this.key.channel, clientId: this.key.clientId, cid: this.key.cid }))
  }

  onEvents (events: FeedEvent[]): void { this.hub.publish(this, events) }
  onFatal (err?: { message: string }): void { this.hub.rejectChannel(this.key.channel, err?.message) }
  onStart (outcome: SubscribeResult): void { this.settle?.(outcome) }
  onListening (): void {
    this.listening = undefined
    this.heard?.()
    this.heard = undefined
  }
  onGap (): void { this.hub.loseFeed(this.id, this) }
}

const OLDER_THAN_KEPT = 'cursor is older than the events kept for this connection'
const WEBHOOKS_NOT_KEPT = 'webhook events after this cursor are no longer kept'

/** The in-process hub: one Poller per key, shared by every socket of the key. */
export class LocalHub implements Hub {
  private readonly o: LocalHubOptions
  private readonly feeds = new Map<string, Feed>()
  private readonly polling = new Map<string, PollerContext>()
  private readonly source: FeedSourceFactory

  constructor (opts: LocalHubOptions) {
    this.o = opts
    this.source = opts.source ?? ((s) => this.pollerFor(s))
  }

  async subscribe (key: FeedKey, sub: Subscriber, resume?: StreamPosition): Promise<SubscribeResult> {
    const id = feedId(key)
    let feed = this.feeds.get(id)
    if (feed === undefined) {
      if (this.o.apis.get(key.channel)?.traits.refused === true) throw new ChannelRefusedError()
      if (this.feeds.size >= this.o.maxFeeds) throw new FeedLimitError()
      feed = this.createFeed(id, key, resume)
      const position = feed.pos
      feed.subs.set(sub, { lastSeq: feed.seq, behind: false })
      if (resume !== undefined) {
        // What the webhook brought while the client was away goes first; mail arriving meanwhile waits behind it.
        feed.mailHold = []
        const mail = await this.mailAfter(key, resume.webhook)
        const held = feed.mailHold
        feed.mailHold = undefined
        if (mail === null) {
          this.publishWebhook(feed, held)
          return { resumed: false, gap: WEBHOOKS_NOT_KEPT, position }
        }
        const byPos = new Map([...mail, ...held].map((m) => [m.pos, m]))
        this.publishWebhook(feed, [...byPos.values()].sort((a, b) => a.pos - b.pos))
      }
      if (feed.starting === undefined) {
        await this.waitListening(feed)
        return resume === undefined ? { resumed: false, position } : { resumed: true }
      }
      return await this.waitStart(feed.starting.outcome)
    }
    if (feed.linger !== undefined) {
      clearTimeout(feed.linger)
      feed.linger = undefined
    }
    if (resume === undefined || samePosition(resume, feed.pos)) {
      const position = feed.pos
      feed.subs.set(sub, { lastSeq: feed.seq, behind: false })
      await this.waitListening(feed)
      return resume === undefined ? { resumed: false, position } : { resumed: true }
    }
    const covered = this.seqAt(feed, resume)
    if (covered !== undefined) {
      const state = { lastSeq: covered, behind: true }
      feed.subs.set(sub, state)
      this.replay(feed, sub, state)
      return { resumed: true }
    }
    const starting = feed.starting
    if (starting !== undefined && samePosition(starting.pos, resume)) {
      feed.subs.set(sub, { lastSeq: feed.seq, behind: false })
      return await this.waitStart(starting.outcome)
    }
    const position = feed.source.position
    if (position !== undefined && resume.poll !== undefined && resume.poll.ts > position) {
      feed.subs.set(sub, { lastSeq: feed.seq, behind: false })
      return { resumed: false, gap: 'cursor is ahead of this connection\'s events', position: feed.pos }
    }
    return await this.catchUp(feed, sub, resume)
  }

  /** The seq of the last frame in memory that a position covers, if memory reaches back to it. */
  private seqAt (feed: Feed, pos: StreamPosition): number | undefined {
    const oldest = feed.recent[0]
    if (oldest === undefined) return undefined
    if (samePosition(oldest.before, pos)) return oldest.seq - 1
    return feed.recent.find((e) => samePosition(e.pos, pos))?.seq
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
    feed.source.resume()
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
      if (f.source.isPaused) pausedFeeds++
    }
    return { feeds: this.feeds.size, subscribers, pausedFeeds }
  }

  async close (): Promise<void> {
    for (const [id, feed] of this.feeds) this.endFeed(id, feed)
  }

  private createFeed (id: string, key: FeedKey, resume: StreamPosition | undefined): Feed {
    const api = this.o.apis.get(key.channel)
    if (api === undefined) throw new Error(`no channel "${key.channel}"`)
    // Before the upstream has answered anything its clock is not known: the connection's start (ts 0) is
    // the one time it surely knows, and its `cid` scopes what that brings.
    const feed = new Feed(this, id, key, resume, this.o.webhooks?.mailbox.mark() ?? 0, api.traits.upstreamNow() ?? 0)
    // From a millisecond early: while the upstream's bound is not known, "from S" is asked as S - 1.
    if (feed.start.hash === '') feed.before = this.deliveredSince(key, feed.start.ts - 1)
    feed.source = this.source(feed)
    this.feeds.set(id, feed)
    this.o.webhooks?.mailbox.watch?.(key.channel, key.clientId)
    feed.source.start()
    return feed
  }

  /**
   * The events the client's other feeds delivered already, stamped from `ts`
   * on: a new connection starting at `ts` began after them (its start is a
   * time, and can share their millisecond), so they are not its events.
   */
  private deliveredSince (key: FeedKey, ts: number): CursorPosition[] | undefined {
    let out: CursorPosition[] | undefined
    for (const f of this.feeds.values()) {
      if (f.key.clientId !== key.clientId || f.key.channel !== key.channel) continue
      for (const e of f.recent) if (e.kind === 'poll' && e.pos.poll !== undefined && e.pos.poll.ts >= ts) (out ??= []).push(e.pos.poll)
    }
    return out
  }

  /** A child of the hub's logger (a feed's, made when it first logs). */
  childLog (bindings: object): Log {
    return this.o.log.child(bindings)
  }

  private pollerFor (s: FeedSourceOptions): Poller {
    return new Poller(this.pollingOf(s.key.channel), s.key, s, s.start, s.before)
  }

  /** What every poller of a channel shares, its failure streak too: an outage is one story, however many pollers see it. */
  private pollingOf (channel: string): PollerContext {
    let ctx = this.polling.get(channel)
    if (ctx === undefined) {
      const api = this.o.apis.get(channel) as ChatApi
      ctx = {
        upstream: api,
        traits: api.traits,
        backoffBaseMs: this.o.backoffBaseMs,
        backoffMaxMs: this.o.backoffMaxMs,
        gate: this.o.gate,
        streak: new StreakLog(this.o.log.child({ channel }))
      }
      this.polling.set(channel, ctx)
    }
    return ctx
  }

  /**
   * A welcome promises every event from then on, but a server that starts a
   * connection's events when it first sees its `cid` has none for it before
   * its first poll arrives (which the poll gate may hold back): wait for that,
   * within the resume wait.
   */
  private async waitListening (feed: Feed): Promise<void> {
    if (feed.listening !== undefined) await within(feed.listening, this.o.resumeWaitMs, undefined)
  }

  private async waitStart (outcome: Promise<SubscribeResult>): Promise<SubscribeResult> {
    return await within(outcome, this.o.resumeWaitMs, { resumed: false, gap: 'the upstream did not answer in time to resume' })
  }

  /**
   * A cursor older than the events in memory: read the upstream from the
   * cursor's event up to the first polled event in memory, send that, then
   * the webhook mail of the same span, then continue from memory. Live events
   * arriving meanwhile wait in `recent`, so the order holds.
   */
  private async catchUp (feed: Feed, sub: Subscriber, resume: StreamPosition): Promise<SubscribeResult> {
    // What memory holds now bounds the catch-up; what arrives while it reads waits in memory behind it.
    const oldest = feed.recent[0]
    const firstPolled = feed.recent.find((e) => e.kind === 'poll')
    const seqNow = feed.seq
    const posNow = feed.pos
    const state: SubState = { lastSeq: seqNow, behind: true }
    feed.subs.set(sub, state)
    const fail = (gap: string): SubscribeResult => {
      state.lastSeq = feed.seq
      state.behind = false
      this.replay(feed, sub, state)
      return { resumed: false, gap, position: feed.pos }
    }
    const mail = await this.mailAfter(feed.key, resume.webhook)
    if (mail === null) return fail(WEBHOOKS_NOT_KEPT)
    // Stop before the first polled event in memory; with none in memory, after the feed's own position.
    const stopBefore = firstPolled?.pos.poll
    // (A position that is a time, not an event, bounds nothing: the feed has polled nothing yet.)
    const stopAfter = firstPolled === undefined && posNow.poll?.hash !== '' ? posNow.poll : undefined
    let polled: FeedEvent[] = []
    if (stopBefore === undefined && stopAfter === undefined) {
      // The feed has polled nothing yet; a cursor from before it cannot be bounded, one from its start needs nothing.
      if (resume.poll !== undefined && resume.poll.hash !== '') return fail(OLDER_THAN_KEPT)
    } else if (!(stopAfter !== undefined && resume.poll !== undefined && samePoll(stopAfter, resume.poll))) {
      const api = this.o.apis.get(feed.key.channel) as ChatApi
      const read = await readAfter(api, feed.key, resume.poll ?? { ts: 0, hash: '' }, { before: stopBefore, through: stopAfter })
      if (typeof read === 'string') return feed.subs.get(sub) === state ? fail(read) : { resumed: false, gap: read }
      polled = read
    }
    if (feed.subs.get(sub) !== state) return { resumed: false, gap: 'socket closed' }
    const webhookLimit = oldest?.before.webhook ?? posNow.webhook
    let pos: StreamPosition = { poll: resume.poll, webhook: resume.webhook }
    for (const ev of polled) {
      pos = { poll: { ts: ev.ts, hash: ev.hash }, webhook: pos.webhook }
      sub.deliver(this.frameOf(feed, pos, ev.json))
    }
    for (const m of mail) {
      if (m.pos > webhookLimit) break
      pos = { poll: pos.poll, webhook: m.pos }
      sub.deliver(this.frameOf(feed, pos, m.json))
    }
    state.lastSeq = oldest === undefined ? seqNow : oldest.seq - 1
    this.replay(feed, sub, state)
    return { resumed: true }
  }

  private frameOf (feed: Feed, pos: StreamPosition, json: string): string {
    const cursor = this.o.cursors.encode(feed.key, pos)
    return `{"type":"event","cursor":"${cursor}","event":${json}}`
  }

  /** Webhook mail of a client after `pos`, or null when some of it may be lost. */
  private async mailAfter (key: FeedKey, pos: number): Promise<MailboxEntry[] | null> {
    return await this.o.webhooks?.mailbox.after(key.channel, key.clientId, pos) ?? []
  }

  /** Webhook deliveries for a client: to every feed of that client. */
  deliverWebhook (channel: string, clientId: string, entries: MailboxEntry[]): void {
    for (const feed of this.feeds.values()) {
      if (feed.key.channel === channel && feed.key.clientId === clientId) this.publishWebhook(feed, entries)
    }
  }

  private publishWebhook (feed: Feed, entries: MailboxEntry[]): void {
    if (feed.mailHold !== undefined) {
      feed.mailHold.push(...entries)
      return
    }
    for (const m of entries) {
      if (m.pos <= feed.pos.webhook) continue
      this.append(feed, 'mail', { poll: feed.pos.poll, webhook: m.pos }, m.ts, m.json)
    }
    this.pace(feed)
  }

  /** New upstream events of a feed (called by the feed). */
  publish (feed: Feed, events: FeedEvent[]): void {
    const echoes = this.o.webhooks?.echoes
    for (const ev of events) {
      const pos = { poll: { ts: ev.ts, hash: ev.hash }, webhook: feed.pos.webhook }
      const answer = echoes === undefined ? undefined : answerId(JSON.parse(ev.json) as Record<string, unknown>)
      if (answer !== undefined && echoes !== undefined) {
        if (echoes.seenByWebhook(feed.key.channel, feed.key.clientId, answer)) {
          // Already shown from the webhook: move the position, send nothing.
          feed.pos = pos
          continue
        }
        echoes.pollDelivered(feed.key.channel, feed.key.clientId, answer)
      }
      this.append(feed, 'poll', pos, ev.ts, ev.json)
    }
    this.pace(feed)
  }

  /** Adds one frame to the feed's stream and hands it to every socket that has room. */
  private append (feed: Feed, kind: Buffered['kind'], pos: StreamPosition, ts: number, json: string): void {
    const e: Buffered = { seq: ++feed.seq, kind, pos, before: feed.pos, ts, frame: this.frameOf(feed, pos, json) }
    feed.pos = pos
    feed.recent.push(e)
    if (feed.recent.length > Math.max(this.o.bufferSize, 1)) feed.recent.shift()
    let sent = 0
    for (const [sub, state] of feed.subs) {
      if (state.behind) continue
      state.lastSeq = e.seq
      sent++
      if (!sub.deliver(e.frame)) state.behind = true
    }
    this.o.onPublish?.(feed.key.channel, ts, sent)
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
    if (anyReady) feed.source.resume()
    else feed.source.pause()
  }

  /** The upstream refused the channel token: every feed of the channel ends, its sockets close with 4502. */
  rejectChannel (channel: string, reason = 'the channel token was refused'): void {
    this.o.apis.get(channel)?.traits.refuse(reason)
    for (const [id, feed] of this.feeds) {
      if (feed.key.channel !== channel) continue
      const subs = [...feed.subs.keys()]
      this.endFeed(id, feed)
      for (const sub of subs) sub.upstreamRejected()
    }
  }

  /** The feed's source lost events: its sockets close with 4409 and resume, which tells each what it missed. */
  loseFeed (id: string, feed: Feed): void {
    if (this.feeds.get(id) !== feed) return
    const subs = [...feed.subs.keys()]
    this.endFeed(id, feed)
    for (const sub of subs) sub.tooSlow()
  }

  private endFeed (id: string, feed: Feed): void {
    if (feed.linger !== undefined) clearTimeout(feed.linger)
    feed.source.stop()
    feed.subs.clear()
    this.feeds.delete(id)
    this.o.webhooks?.mailbox.unwatch?.(feed.key.channel, feed.key.clientId)
  }
}
