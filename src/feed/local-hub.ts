import { samePosition, type CursorCodec, type StreamPosition } from './cursor.js'
import { CATCH_UPS_BURST, CATCH_UPS_PER_S, CatchUpLimitError, OLDER_THAN_KEPT, readAfter } from './catch-up.js'
import { samePoll, type FeedEvent } from './event.js'
import { deliveredAround, Feed, type FeedHost, type SubState } from './feed.js'
import { positionOf, type HandedEvent, type HandedFeed } from './handoff.js'
import { ClientFeeds } from './client-feeds.js'
import { clientKey } from '../lib/client-key.js'
import { TokenBuckets } from '../lib/token-bucket.js'
import { ChannelRefusedError, FeedLimitError, feedId, type FeedKey, type FeedSourceFactory, type FeedSourceOptions, type Hub, type HubStats, type Subscriber, type SubscribeResult } from './hub.js'
import type { PollGate } from './poll-gate.js'
import { Poller, PollerContexts } from './poller.js'
import { within } from '../lib/deadline.js'
import type { Log } from '../lib/log.js'
import type { ChatApi } from '../upstream/chat-api.js'
import type { Echoes } from '../webhook/echoes.js'
import type { MailStore, MailboxEntry } from '../webhook/mailbox.js'

export interface LocalHubOptions {
  apis: Map<string, ChatApi>
  cursors: CursorCodec
  log: Log & { child: (b: object) => Log }
  lingerMs: number
  bufferSize: number
  /** Bytes of events kept for one client across its feeds. */
  bufferBytes: number
  /** Feeds one client keeps at most: past it, its feeds without sockets end first. */
  maxFeedsPerClient: number
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

const WEBHOOKS_NOT_KEPT = 'webhook events after this cursor are no longer kept'

/** The in-process hub: one Poller per key, shared by every socket of the key. */
export class LocalHub implements Hub {
  private readonly o: LocalHubOptions
  private readonly feeds = new Map<string, Feed>()
  /** Feeds that no socket holds, oldest linger first: they give way when the instance is full. */
  private readonly lingering = new Map<string, Feed>()
  /** The feeds of each client, by clientKey(channel, clientId). */
  private readonly clients = new Map<string, ClientFeeds<Feed>>()
  /** The catch-up reads each client may still make (see CATCH_UPS_BURST). */
  private readonly catchUps = new TokenBuckets(CATCH_UPS_PER_S, CATCH_UPS_BURST)
  private readonly polling: PollerContexts
  private readonly source: FeedSourceFactory
  private readonly host: FeedHost

  constructor (opts: LocalHubOptions) {
    this.o = opts
    this.polling = new PollerContexts({
      apis: opts.apis,
      backoff: { baseMs: opts.backoffBaseMs, maxMs: opts.backoffMaxMs },
      gate: opts.gate,
      channelLog: (channel) => opts.log.child({ channel })
    })
    this.source = opts.source ?? ((s) => this.pollerFor(s))
    this.host = {
      cursors: opts.cursors,
      bufferSize: opts.bufferSize,
      bufferBytes: opts.bufferBytes,
      echoes: opts.webhooks?.echoes,
      onPublish: opts.onPublish,
      childLog: (bindings) => opts.log.child(bindings),
      rejectChannel: (channel, reason) => { this.rejectChannel(channel, reason) },
      lose: (feed) => { this.loseFeed(feed) }
    }
  }

  async subscribe (key: FeedKey, sub: Subscriber, resume?: StreamPosition): Promise<SubscribeResult> {
    const id = feedId(key)
    let feed = this.feeds.get(id)
    if (feed === undefined) {
      if (this.o.apis.get(key.channel)?.traits.refused === true) throw new ChannelRefusedError()
      if (this.feeds.size >= this.o.maxFeeds && !this.giveWay()) throw new FeedLimitError()
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
          feed.publishMail(held)
          return { resumed: false, gap: WEBHOOKS_NOT_KEPT, position }
        }
        const byPos = new Map([...mail, ...held].map((m) => [m.pos, m]))
        feed.publishMail([...byPos.values()].sort((a, b) => a.pos - b.pos))
      }
      if (feed.starting === undefined) {
        await this.waitListening(feed)
        return resume === undefined ? { resumed: false, position } : { resumed: true }
      }
      return await this.waitStart(feed.starting.outcome)
    }
    this.stopLinger(feed)
    if (feed.dormant) {
      // A handed-over feed serves resumes; a new connection of the same cid starts afresh, from now.
      if (resume === undefined) {
        this.endFeed(id, feed)
        return await this.subscribe(key, sub)
      }
      feed.dormant = false
      feed.source.start()
    }
    if (resume === undefined || samePosition(resume, feed.pos)) {
      const position = feed.pos
      feed.subs.set(sub, { lastSeq: feed.seq, behind: false })
      await this.waitListening(feed)
      return resume === undefined ? { resumed: false, position } : { resumed: true }
    }
    const covered = feed.seqAt(resume)
    if (covered !== undefined) {
      const state = { lastSeq: covered, behind: true }
      feed.subs.set(sub, state)
      feed.replay(sub, state)
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

  unsubscribe (key: FeedKey, sub: Subscriber): void {
    const id = feedId(key)
    const feed = this.feeds.get(id)
    if (feed === undefined || !feed.subs.delete(sub)) return
    if (feed.subs.size > 0) {
      feed.pace()
      return
    }
    // A feed that delivered nothing has nothing to resume from memory: its cursor names a time, and a
    // new feed reads from that time. Only feeds with events linger.
    if (this.o.lingerMs === 0 || feed.seq === 0) {
      this.endFeed(id, feed)
      return
    }
    // A feed without sockets keeps polling for a while, so that a quick reconnect resumes from memory.
    feed.source.resume()
    this.lingerFor(id, feed)
  }

  private lingerFor (id: string, feed: Feed): void {
    feed.linger = setTimeout(() => {
      if (feed.subs.size === 0 && this.feeds.get(id) === feed) this.endFeed(id, feed)
    }, this.o.lingerMs)
    feed.linger.unref()
    this.lingering.set(id, feed)
  }

  private stopLinger (feed: Feed): void {
    if (feed.linger === undefined) return
    clearTimeout(feed.linger)
    feed.linger = undefined
    this.lingering.delete(feed.id)
  }

  /**
   * Ends a feed that no socket holds, to make room for one that a socket
   * wants: the one that has lingered longest, or the oldest of `among`.
   * False when none lingers.
   */
  private giveWay (among?: Iterable<Feed>): boolean {
    for (const feed of among ?? this.lingering.values()) {
      if (feed.linger === undefined) continue
      this.endFeed(feed.id, feed)
      return true
    }
    return false
  }

  drained (key: FeedKey, sub: Subscriber): void {
    const feed = this.feeds.get(feedId(key))
    const state = feed?.subs.get(sub)
    if (feed === undefined || state === undefined || !state.behind) return
    feed.replay(sub, state)
  }

  /** What the next process needs to resume the feeds from memory (once no socket holds them). */
  handover (): HandedFeed[] {
    const out: HandedFeed[] = []
    for (const feed of this.feeds.values()) {
      const events = feed.handover()
      if (events !== undefined) out.push({ key: feed.key, events })
    }
    return out
  }

  /** Feeds a previous process handed over: each lingers unpolled, until a socket resumes it or its linger ends. */
  takeOver (handed: HandedFeed[]): number {
    let n = 0
    for (const h of handed) {
      const id = feedId(h.key)
      const last = h.events[h.events.length - 1] as HandedEvent
      if (this.feeds.has(id) || !this.o.apis.has(h.key.channel) || this.feeds.size >= this.o.maxFeeds) continue
      const feed = this.createFeed(id, h.key, positionOf(last.pos), false)
      feed.warm(h.events)
      this.lingerFor(id, feed)
      n++
    }
    return n
  }

  stats (): HubStats {
    let subscribers = 0
    let pausedFeeds = 0
    let dormant = 0
    for (const f of this.feeds.values()) {
      subscribers += f.subs.size
      if (f.source.isPaused) pausedFeeds++
      if (f.dormant) dormant++
    }
    return { feeds: this.feeds.size, polling: this.feeds.size - dormant, subscribers, pausedFeeds, full: this.feeds.size >= this.o.maxFeeds && this.lingering.size === 0 }
  }

  async close (): Promise<void> {
    for (const [id, feed] of this.feeds) this.endFeed(id, feed)
  }

  private createFeed (id: string, key: FeedKey, resume: StreamPosition | undefined, start = true): Feed {
    const api = this.o.apis.get(key.channel)
    if (api === undefined) throw new Error(`no channel "${key.channel}"`)
    // Before the upstream has answered anything its clock is not known: the connection's start (ts 0) is
    // the one time it surely knows, and its `cid` scopes what that brings.
    const ck = clientKey(key.channel, key.clientId)
    let client = this.clients.get(ck)
    if (client === undefined) this.clients.set(ck, client = new ClientFeeds())
    // A client that keeps opening connections keeps its own lingering ones to a bound: the oldest go first.
    if (client.feeds.size >= this.o.maxFeedsPerClient) this.giveWay(client.feeds)
    const feed = new Feed(this.host, client, id, key, resume, this.o.webhooks?.mailbox.mark() ?? 0, api.traits.upstreamNow() ?? 0)
    // From a millisecond early: while the upstream's bound is not known, "from S" is asked as S - 1.
    if (feed.start.hash === '') feed.before = deliveredAround(client.feeds, feed.start.ts - 1, feed.start.ts + api.traits.granularity)
    feed.source = this.source(feed)
    this.feeds.set(id, feed)
    client.feeds.add(feed)
    this.o.webhooks?.mailbox.watch?.(key.channel, key.clientId)
    if (start) feed.source.start()
    return feed
  }

  private pollerFor (s: FeedSourceOptions): Poller {
    return new Poller(this.polling.of(s.key.channel), s.key, s, s.start, s.before)
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
      feed.replay(sub, state)
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
      if (!this.mayCatchUp(feed.key)) {
        this.unsubscribe(feed.key, sub)
        throw new CatchUpLimitError()
      }
      const api = this.o.apis.get(feed.key.channel) as ChatApi
      const read = await readAfter(api, feed.key, resume.poll ?? { ts: 0, hash: '' }, { before: stopBefore, through: stopAfter })
      if (typeof read === 'string') return feed.subs.get(sub) === state ? fail(read) : { resumed: false, gap: read }
      polled = read
    }
    if (feed.subs.get(sub) !== state) return { resumed: false, gap: 'socket closed' }
    const webhookLimit = oldest?.before.webhook ?? posNow.webhook
    let pos: StreamPosition = { poll: resume.poll, webhook: resume.webhook }
    const frames: string[] = []
    for (const ev of polled) {
      pos = { poll: { ts: ev.ts, hash: ev.hash }, webhook: pos.webhook }
      frames.push(feed.frameOf(pos, ev.json))
    }
    for (const m of mail) {
      if (m.pos > webhookLimit) break
      pos = { poll: pos.poll, webhook: m.pos }
      frames.push(feed.frameOf(pos, m.json))
    }
    // What was read back goes first, at the socket's pace, then what memory holds from there on.
    state.backlog = { frames, next: 0 }
    state.lastSeq = oldest === undefined ? seqNow : oldest.seq - 1
    feed.replay(sub, state)
    return { resumed: true }
  }

  /** Takes one of the client's catch-up reads; false when it has none left for now. */
  private mayCatchUp (key: FeedKey): boolean {
    return this.catchUps.take(clientKey(key.channel, key.clientId), Date.now())
  }

  /** Webhook mail of a client after `pos`, or null when some of it may be lost. */
  private async mailAfter (key: FeedKey, pos: number): Promise<MailboxEntry[] | null> {
    return await this.o.webhooks?.mailbox.after(key.channel, key.clientId, pos) ?? []
  }

  /** Webhook deliveries for a client: to every feed of that client. */
  deliverWebhook (channel: string, clientId: string, entries: MailboxEntry[]): void {
    const client = this.clients.get(clientKey(channel, clientId))
    if (client !== undefined) for (const feed of client.feeds) feed.publishMail(entries)
  }

  /** The upstream refused the channel token: every feed of the channel ends, its sockets close with 4502. */
  private rejectChannel (channel: string, reason = 'the channel token was refused'): void {
    this.o.apis.get(channel)?.traits.refuse(reason)
    for (const [id, feed] of this.feeds) {
      if (feed.key.channel !== channel) continue
      const subs = [...feed.subs.keys()]
      this.endFeed(id, feed)
      for (const sub of subs) sub.upstreamRejected()
    }
  }

  /** The feed's source lost events: its sockets close with 4409 and resume, which tells each what it missed. */
  private loseFeed (feed: Feed): void {
    const id = feed.id
    if (this.feeds.get(id) !== feed) return
    const subs = [...feed.subs.keys()]
    this.endFeed(id, feed)
    for (const sub of subs) sub.tooSlow()
  }

  private endFeed (id: string, feed: Feed): void {
    this.stopLinger(feed)
    feed.source.stop()
    feed.subs.clear()
    feed.forget()
    this.feeds.delete(id)
    const client = feed.client
    client.feeds.delete(feed)
    if (client.feeds.size === 0) this.clients.delete(clientKey(feed.key.channel, feed.key.clientId))
    this.o.webhooks?.mailbox.unwatch?.(feed.key.channel, feed.key.clientId)
  }
}
