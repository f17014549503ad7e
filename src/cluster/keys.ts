import { createHash } from 'node:crypto'
import { feedId, type FeedKey } from '../feed/hub.js'

/**
 * The Redis names of one connection's feed. They share one hash tag, so a
 * script may touch them all on a Redis Cluster (one slot).
 */
export interface FeedKeys {
  /** `<instance>:<fence>` of the instance that polls the upstream for the feed. */
  lease: string
  /** Counts the leases ever given for the feed: the fencing token's number. */
  fence: string
  /** The feed's events, in upstream order (a Redis Stream). */
  stream: string
  /** Pub/sub channel: "new events", "lease released", "channel rejected". */
  notify: string
}

/** Short and free of the clientId's characters; the same on every instance. */
function tag (text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 22)
}

export function feedKeys (prefix: string, key: FeedKey): FeedKeys {
  const base = `${prefix}feed:{${tag(feedId(key))}}`
  return { lease: `${base}:lease`, fence: `${base}:fence`, stream: `${base}:events`, notify: `${base}:notify` }
}

/** The key of one request's result, and the channel told when it is there. */
export function resultKeys (prefix: string, requestKey: string): { result: string, notify: string } {
  const base = `${prefix}result:{${tag(requestKey)}}`
  return { result: base, notify: `${base}:notify` }
}

/** The keys of one client's send lane: the ticket counter, the queue, each waiter's liveness, and its channel. */
export function laneKeys (prefix: string, lane: string): { tickets: string, queue: string, alive: string, notify: string } {
  const base = `${prefix}lane:{${tag(lane)}}`
  return { tickets: `${base}:tickets`, queue: `${base}:queue`, alive: `${base}:alive`, notify: `${base}:notify` }
}
