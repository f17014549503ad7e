import type { CursorPosition } from './cursor.js'

/** The key of one upstream event feed: one long poll per key. */
export interface FeedKey { channel: string, clientId: string, cid: string, all: boolean }

/** One socket, as the hub sees it. */
export interface Subscriber {
  /** A ready-made `event` frame; delivered in upstream order, each once. */
  deliver: (frame: string) => void
  /** The upstream refused the channel token: the socket should close with 4502. */
  upstreamRejected: () => void
}

export interface SubscribeResult {
  /** True when every event after the resume cursor is delivered. */
  resumed: boolean
  gap?: string
  /** Frames after the cursor that the hub had in memory; send them before anything delivered later. */
  backlog: string[]
}

export interface HubStats { feeds: number, subscribers: number }

/**
 * Fans one upstream long poll per key out to every socket of that key. The
 * in-process hub implements it; a clustered hub can implement it on a shared
 * store.
 */
export interface Hub {
  subscribe: (key: FeedKey, sub: Subscriber, resume?: CursorPosition) => Promise<SubscribeResult>
  unsubscribe: (key: FeedKey, sub: Subscriber) => void
  stats: () => HubStats
  close: () => Promise<void>
}

export function feedId (k: FeedKey): string {
  return `${k.channel}\n${k.clientId}\n${k.cid}\n${k.all ? 1 : 0}`
}
