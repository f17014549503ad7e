import type { StreamPosition } from './cursor.js'
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

export interface HubStats { feeds: number, subscribers: number, pausedFeeds: number }

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
