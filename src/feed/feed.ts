import { samePosition, type CursorCodec, type CursorPosition, type StreamPosition } from './cursor.js'
import type { FeedEvent } from './event.js'
import type { FeedKey, FeedSource, FeedSourceOptions, Subscriber, SubscribeResult } from './hub.js'
import type { PollerSink } from './poller.js'
import type { Log } from '../lib/log.js'
import type { MailboxEntry } from '../webhook/mailbox.js'
import { answerId, type Echoes } from '../webhook/echoes.js'
import type { ClientFeeds, SharedText } from './client-feeds.js'
import { positionOf, type HandedEvent } from './handoff.js'

/** What every feed of a hub shares, and how a feed tells its hub that it ended. */
export interface FeedHost {
  readonly cursors: CursorCodec
  /** Frames each feed keeps for resumes and slow sockets. */
  readonly bufferSize: number
  /** Bytes of events the feeds of one client keep together. */
  readonly bufferBytes: number
  /** The answers seen by each source (webhook, poll); absent when webhooks are off. */
  readonly echoes: Echoes | undefined
  /** Told of each new upstream event and how many sockets got it. */
  readonly onPublish: ((channel: string, ts: number, sockets: number) => void) | undefined
  childLog: (bindings: object) => Log
  /** The upstream refused the channel's token. */
  rejectChannel: (channel: string, reason?: string) => void
  /** The feed's source lost events that cannot be had again. */
  lose: (feed: Feed) => void
}

export interface Buffered {
  seq: number
  kind: 'poll' | 'mail'
  /** The stream position after this frame: what its cursor names. */
  pos: StreamPosition
  /** The stream position before this frame. */
  before: StreamPosition
  ts: number
  /** The event's text, held once for every feed of the client; its frame is made when it is sent. */
  text: SharedText
  /** What the text is known by among the client's texts. */
  textKey: string
}

export interface SubState {
  /** Sequence number of the last frame handed to the socket. */
  lastSeq: number
  /** The socket's queue is full (or it is catching up): frames wait in `recent`. */
  behind: boolean
  /** Frames read back from the upstream for a resume, sent before anything of `recent`. */
  backlog?: { frames: string[], next: number } | undefined
}

/**
 * One upstream feed and the sockets that share it: where it is in the
 * stream (`pos`), the recent frames, the fan-out to its sockets and their
 * pace. It is also what its source reports to (FeedSourceOptions), through
 * methods rather than a closure each, since an idle client costs one of these.
 */
export class Feed implements FeedSourceOptions, PollerSink, Log {
  readonly key: FeedKey
  readonly id: string
  private readonly host: FeedHost
  /** Where the source starts (see FeedSourceOptions.start). */
  readonly start: CursorPosition
  /** The client's feeds, with whom this one shares its events' texts and their bound in bytes. */
  readonly client: ClientFeeds<Feed>
  before: CursorPosition[] | undefined
  source!: FeedSource
  readonly subs = new Map<Subscriber, SubState>()
  /** The most recent frames, oldest first: resumes and slow sockets are served from here. */
  readonly recent: Buffered[] = []
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
  /** Handed over by the previous process and not yet taken by a socket: its poll has not started. */
  dormant = false
  /** Resumes were answered from what was handed over, before the upstream confirmed the position. */
  private handedOver = false

  /**
   * A new feed (no `resume`) starts at `upstreamNow`, the upstream's time as
   * low as the bridge can know it, so its first poll asks for everything from
   * the welcome on; a cursor from before any event names a time in the same way.
   */
  constructor (host: FeedHost, client: ClientFeeds<Feed>, id: string, key: FeedKey, resume: StreamPosition | undefined, webhookMark: number, upstreamNow: number) {
    this.host = host
    this.client = client
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
    return (this.child ??= this.host.childLog({ channel: this.key.channel, clientId: this.key.clientId, cid: this.key.cid }))
  }

  onEvents (events: FeedEvent[]): void { this.publish(events) }
  onFatal (err?: { message: string }): void { this.host.rejectChannel(this.key.channel, err?.message) }
  onStart (outcome: SubscribeResult): void {
    // A handed-over feed told its sockets they resumed; if the upstream no longer has its position, they must resume again.
    if (this.handedOver && !outcome.resumed) this.host.lose(this)
    this.handedOver = false
    this.settle?.(outcome)
  }
  onListening (): void {
    this.listening = undefined
    this.heard?.()
    this.heard = undefined
  }
  onGap (): void { this.host.lose(this) }

  /**
   * Takes the events a previous process kept for this connection (the feed
   * was made at the last one's position): resumes are served from them, and
   * the upstream is known to have seen the connection. The poll starts when
   * a socket takes the feed.
   */
  warm (events: HandedEvent[]): void {
    this.starting = undefined
    this.settle = undefined
    this.onListening()
    this.dormant = true
    this.handedOver = true
    for (const e of events) {
      const pos = positionOf(e.pos)
      const textKey = 'p' + (pos.poll?.hash ?? '')
      this.recent.push({ seq: ++this.seq, kind: 'poll', pos, before: positionOf(e.before), ts: e.ts, text: this.client.hold(textKey, e.json), textKey })
      this.pos = pos
    }
  }

  /** What the next process needs to resume this feed from memory; undefined when it has nothing to give. */
  handover (): HandedEvent[] | undefined {
    if (this.recent.length === 0 || this.recent.some((e) => e.kind !== 'poll')) return undefined
    return this.recent.map((e) => ({ ts: e.ts, pos: e.pos, before: e.before, json: e.text.json }))
  }

  /** The seq of the last frame in memory that a position covers, if memory reaches back to it. */
  seqAt (pos: StreamPosition): number | undefined {
    const oldest = this.recent[0]
    if (oldest === undefined) return undefined
    if (samePosition(oldest.before, pos)) return oldest.seq - 1
    return this.recent.find((e) => samePosition(e.pos, pos))?.seq
  }

  /** The `event` frame of one event at a position: one serialisation for every socket. */
  frameOf (pos: StreamPosition, json: string): string {
    const cursor = this.host.cursors.encode(this.key, pos)
    return `{"type":"event","cursor":"${cursor}","event":${json}}`
  }

  /** New upstream events; an answer that the webhook showed already only moves the position. */
  publish (events: FeedEvent[]): void {
    const echoes = this.host.echoes
    for (const ev of events) {
      const pos = { poll: { ts: ev.ts, hash: ev.hash }, webhook: this.pos.webhook }
      const answer = echoes === undefined ? undefined : answerId(JSON.parse(ev.json) as Record<string, unknown>)
      if (answer !== undefined && echoes !== undefined) {
        if (echoes.seenByWebhook(this.key.channel, this.key.clientId, answer)) {
          this.pos = pos
          continue
        }
        echoes.pollDelivered(this.key.channel, this.key.clientId, answer)
      }
      this.append('poll', pos, ev.ts, 'p' + ev.hash, ev.json)
    }
    this.pace()
  }

  /** Webhook deliveries for the feed's client; while the feed reads the mail of an absence, they wait behind it. */
  publishMail (entries: MailboxEntry[]): void {
    if (this.mailHold !== undefined) {
      this.mailHold.push(...entries)
      return
    }
    for (const m of entries) {
      if (m.pos <= this.pos.webhook) continue
      this.append('mail', { poll: this.pos.poll, webhook: m.pos }, m.ts, 'm' + String(m.pos), m.json)
    }
    this.pace()
  }

  /** Adds one frame to the feed's stream and hands it to every socket that has room. */
  private append (kind: Buffered['kind'], pos: StreamPosition, ts: number, textKey: string, json: string): void {
    const e: Buffered = { seq: ++this.seq, kind, pos, before: this.pos, ts, text: this.client.hold(textKey, json), textKey }
    this.pos = pos
    this.recent.push(e)
    if (this.recent.length > Math.max(this.host.bufferSize, 1)) this.dropOldest()
    let sent = 0
    let frame: string | undefined
    for (const [sub, state] of this.subs) {
      if (state.behind) continue
      state.lastSeq = e.seq
      sent++
      if (!sub.deliver(frame ??= this.frameOf(pos, json))) state.behind = true
    }
    // Past the client's bound, its oldest events go; a socket that still needed them resumes.
    this.client.trim(this.host.bufferBytes)
    this.host.onPublish?.(this.key.channel, ts, sent)
  }

  /** Forgets the oldest frame kept. */
  dropOldest (): void {
    const e = this.recent.shift()
    if (e !== undefined) this.client.release(e.textKey)
  }

  /** The feed ended: its frames are let go. */
  forget (): void {
    for (const e of this.recent) this.client.release(e.textKey)
    this.recent.length = 0
  }

  /** Sends a socket what it has not had from `recent`; one that fell out of it must resume. */
  replay (sub: Subscriber, state: SubState): void {
    const first = this.recent[0]
    // What follows the socket's last frame is no longer all in memory (it may hold nothing at all).
    if (state.lastSeq < this.seq && (first === undefined || first.seq > state.lastSeq + 1)) {
      this.subs.delete(sub)
      sub.tooSlow()
      this.pace()
      return
    }
    state.behind = false
    if (!this.sendBacklog(sub, state)) {
      state.behind = true
      this.pace()
      return
    }
    let i = first === undefined ? 0 : state.lastSeq + 1 - first.seq
    while (i < this.recent.length) {
      const e = this.recent[i++] as Buffered
      state.lastSeq = e.seq
      if (!sub.deliver(this.frameOf(e.pos, e.text.json))) {
        state.behind = true
        break
      }
    }
    this.pace()
  }

  /** Sends what is left of a socket's backlog; false when its queue filled first. */
  private sendBacklog (sub: Subscriber, state: SubState): boolean {
    const b = state.backlog
    if (b === undefined) return true
    while (b.next < b.frames.length) {
      if (!sub.deliver(b.frames[b.next++] as string)) return false
    }
    state.backlog = undefined
    return true
  }

  /**
   * Lossless back-pressure: when every socket of a feed is behind, the feed
   * stops polling (the upstream keeps the events) until one has room again.
   */
  pace (): void {
    let anyReady = this.subs.size === 0
    for (const state of this.subs.values()) if (!state.behind) { anyReady = true; break }
    if (anyReady) this.source.resume()
    else this.source.pause()
  }
}

/**
 * The events a client's feeds delivered already, stamped within a new
 * connection's starting step [`from`, `to`): a connection that starts at a
 * time can share that step with events that came before it began, and those
 * are not its events. What is stamped after that step came after it began,
 * so a resume from its welcome cursor is owed it, even where another tab of
 * the client had it already.
 */
export function deliveredAround (feeds: Iterable<Feed>, from: number, to: number): CursorPosition[] | undefined {
  let out: CursorPosition[] | undefined
  for (const f of feeds) {
    for (const e of f.recent) {
      const at = e.pos.poll
      if (e.kind === 'poll' && at !== undefined && at.ts >= from && at.ts < to) (out ??= []).push(at)
    }
  }
  return out
}
