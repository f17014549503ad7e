import { samePosition, type CursorCodec, type CursorPosition, type StreamPosition } from './cursor.js'
import { readAfter } from './catch-up.js'
import { samePoll, type FeedEvent } from './event.js'
import { Feed, type FeedHost, type SubState } from './feed.js'
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

const OLDER_THAN_KEPT = 'cursor is older than the events kept for this connection'
const WEBHOOKS_NOT_KEPT = 'webhook events after this cursor are no longer kept'

/** The in-process hub: one Poller per key, shared by every socket of the key. */
export class LocalHub implements Hub {
  private readonly o: LocalHubOptions
  private readonly feeds = new Map<string, Feed>()
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
    feed.replay(sub, state)
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
    const feed = new Feed(this.host, id, key, resume, this.o.webhooks?.mailbox.mark() ?? 0, api.traits.upstreamNow() ?? 0)
    // From a millisecond early: while the upstream's bound is not known, "from S" is asked as S - 1.
    if (feed.start.hash === '') feed.before = this.deliveredAround(key, feed.start.ts - 1, feed.start.ts + api.traits.granularity)
    feed.source = this.source(feed)
    this.feeds.set(id, feed)
    this.o.webhooks?.mailbox.watch?.(key.channel, key.clientId)
    feed.source.start()
    return feed
  }

  /**
   * The events the client's other feeds delivered already, stamped within
   * the connection's starting step [`from`, `to`): a connection that starts
   * at a time can share that step with events that came before it began,
   * and those are not its events. What is stamped after that step came
   * after it began, so a resume from its welcome cursor is owed it, even
   * where another tab of the client had it already.
   */
  private deliveredAround (key: FeedKey, from: number, to: number): CursorPosition[] | undefined {
    let out: CursorPosition[] | undefined
    for (const f of this.feeds.values()) {
      if (f.key.clientId !== key.clientId || f.key.channel !== key.channel) continue
      for (const e of f.recent) {
        const at = e.pos.poll
        if (e.kind === 'poll' && at !== undefined && at.ts >= from && at.ts < to) (out ??= []).push(at)
      }
    }
    return out
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
      sub.deliver(feed.frameOf(pos, ev.json))
    }
    for (const m of mail) {
      if (m.pos > webhookLimit) break
      pos = { poll: pos.poll, webhook: m.pos }
      sub.deliver(feed.frameOf(pos, m.json))
    }
    state.lastSeq = oldest === undefined ? seqNow : oldest.seq - 1
    feed.replay(sub, state)
    return { resumed: true }
  }

  /** Webhook mail of a client after `pos`, or null when some of it may be lost. */
  private async mailAfter (key: FeedKey, pos: number): Promise<MailboxEntry[] | null> {
    return await this.o.webhooks?.mailbox.after(key.channel, key.clientId, pos) ?? []
  }

  /** Webhook deliveries for a client: to every feed of that client. */
  deliverWebhook (channel: string, clientId: string, entries: MailboxEntry[]): void {
    for (const feed of this.feeds.values()) {
      if (feed.key.channel === channel && feed.key.clientId === clientId) feed.publishMail(entries)
    }
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
    if (feed.linger !== undefined) clearTimeout(feed.linger)
    feed.source.stop()
    feed.subs.clear()
    this.feeds.delete(id)
    this.o.webhooks?.mailbox.unwatch?.(feed.key.channel, feed.key.clientId)
  }
}
