import { createHash } from 'node:crypto'
import { feedId, type FeedKey } from '../feed/hub.js'

/**
 * The Redis names of one connection's feed. They share one hash tag, so a
 * script may touch them all on a Redis Cluster (one slot).
 */
export interface FeedKeys {
  /** `<instance>:<fence>` of the instance that polls the upstream for the feed; valid while that instance's alive key is there. */
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

/**
 * The key that says an instance is alive, renewed once a third of a lease
 * for every lease the instance holds. It has a slot of its own on a Redis
 * Cluster, so no script of a feed may touch it: it only tells the others
 * when to bid for the instance's leases.
 */
export function aliveKey (prefix: string, instance: string): string {
  return `${prefix}alive:{${instance}}`
}

/**
 * The results one client has kept in Redis, for its byte budget: a sorted
 * set of `<bytes>:<result key>` by when each expires, and their total.
 * One slot per client; each result key has a slot of its own.
 */
export function keptKeys (prefix: string, client: string): { index: string, bytes: string } {
  const base = `${prefix}kept:{${tag(client)}}`
  return { index: base, bytes: `${base}:bytes` }
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

/**
 * The set of instances that have open sockets of one client, for the
 * offline hook. Written when a client's first socket on an instance opens
 * and its last closes, never on a timer; a member whose alive key is gone
 * counts for nothing.
 */
export function presenceKey (prefix: string, client: string): string {
  return `${prefix}presence:{${tag(client)}}`
}
