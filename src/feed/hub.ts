import type { CursorPosition, StreamPosition } from './cursor.js'
import type { FeedEvent } from './event.js'
import type { Log } from '../lib/log.js'
import { clientKey } from '../lib/client-key.js'
import type { MailboxEntry } from '../webhook/mailbox.js'

/** The key of one upstream event feed: one long poll per key. */
export interface FeedKey { channel: string, clientId: string, cid: string, all: boolean }

/** One socket, as the hub sees it. */
export interface Subscriber {
  /**
   * A ready-made `event` frame, in upstream order, each once. Returns false
   * when the socket's outbound queue is full: the hub then sends nothing more
   * until the socket calls `Hub.drained`.
   */
  deliver: (frame: string) => boolean
  /** The upstream refused the channel token: the socket should close with 4502. */
  upstreamRejected: () => void
  /** The socket fell further behind than the hub remembers: it should close with 4409 and resume. */
  tooSlow: () => void
}

export interface SubscribeResult {
  /** True when every event after the resume cursor is delivered. */
  resumed: boolean
  gap?: string
  /**
   * Where this socket's stream starts when it did not resume: a cursor for
   * it goes into the welcome, so a client that drops before its first event
   * still resumes without loss.
   */
  position?: StreamPosition
}

export interface HubStats {
  feeds: number
  /** Feeds that poll the upstream: all but those handed over by a previous process and not taken by a socket yet. */
  polling: number
  subscribers: number
  pausedFeeds: number
  /** No new feed fits: every one held by a socket, as many as the instance keeps. */
  full: boolean
}

/**
 * Fans one upstream long poll per key out to every socket of that key. The
 * in-process hub implements it; a clustered hub can implement it on a shared
 * store. Frames for a subscriber may be delivered as soon as subscribe() is
 * called, before it resolves: the socket queues them until its welcome is out.
 */
export interface Hub {
  subscribe: (key: FeedKey, sub: Subscriber, resume?: StreamPosition) => Promise<SubscribeResult>
  /** Webhook deliveries for one client: every feed of that client gets them. */
  deliverWebhook: (channel: string, clientId: string, entries: MailboxEntry[]) => void
  unsubscribe: (key: FeedKey, sub: Subscriber) => void
  /** The subscriber's outbound queue has room again. */
  drained: (key: FeedKey, sub: Subscriber) => void
  stats: () => HubStats
  close: () => Promise<void>
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

/** This instance keeps as many upstream polls as it may: the socket is refused with 1013. */
export class FeedLimitError extends Error {
  constructor () {
    super('upstream poll limit reached')
    this.name = 'FeedLimitError'
  }
}

/** The upstream refuses the channel's token: the socket is closed with 4502. */
export class ChannelRefusedError extends Error {
  constructor () {
    super('the upstream refuses the channel token')
    this.name = 'ChannelRefusedError'
  }
}

export function feedId (k: FeedKey): string {
  return clientKey(k.channel, k.clientId, k.cid, k.all ? '1' : '0')
}
