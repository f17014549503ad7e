import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { clientKey } from '../lib/client-key.js'

/** An upstream event (its time and hash), or, with an empty hash, a time: right before every event stamped from then on. */
export interface CursorPosition { ts: number, hash: string }

/** Where a connection is in its stream, which merges the upstream's events and the webhook's deliveries. */
export interface StreamPosition {
  /** The last /events event delivered; undefined before the first one. */
  poll: CursorPosition | undefined
  /** The mailbox position of the last webhook event delivered; 0 before the first one. */
  webhook: number
}

export interface CursorKey { channel: string, clientId: string, cid: string }

const MAC_BYTES = 12

/** The identity of an event: a short hash of its JSON as the upstream sent it (token removed). */
export function eventHash (json: string): string {
  return createHash('sha256').update(json).digest('base64url').slice(0, 16)
}

export function samePosition (a: StreamPosition, b: StreamPosition): boolean {
  return a.webhook === b.webhook && a.poll?.ts === b.poll?.ts && a.poll?.hash === b.poll?.hash
}

/**
 * Cursors name a position in one connection's event stream. That stream
 * merges two sources, so a position has two parts: the last upstream /events
 * event delivered (its upstream time and a hash of it) and the last webhook
 * delivery (its place in the client's webhook mailbox). Cursors are signed
 * and bound to (channel, clientId, cid), so a cursor cannot be altered or used
 * by another client. Format: `c2.<ts base36|->.<hash|->.<mailbox base36>.<mac>`,
 * under 70 characters; a time without an event has its ts and `-` for the hash.
 */
export class CursorCodec {
  private readonly key: Buffer
  constructor (key: Buffer) {
    this.key = key
  }

  encode (k: CursorKey, pos: StreamPosition): string {
    const poll = pos.poll === undefined ? '-.-' : `${pos.poll.ts.toString(36)}.${pos.poll.hash === '' ? '-' : pos.poll.hash}`
    const body = `c2.${poll}.${pos.webhook.toString(36)}`
    return `${body}.${this.mac(k, body)}`
  }

  /** The position, or a reason why the cursor cannot be used. */
  decode (k: CursorKey, cursor: string): StreamPosition | { error: string } {
    const parts = cursor.split('.')
    if (parts.length !== 5 || parts[0] !== 'c2') return { error: 'malformed cursor' }
    const [, ts36, hash, w36, mac] = parts as [string, string, string, string, string]
    const none = ts36 === '-' && hash === '-'
    if (!none && (!/^[0-9a-z]{1,11}$/.test(ts36) || !/^([A-Za-z0-9_-]{16}|-)$/.test(hash))) return { error: 'malformed cursor' }
    if (!/^[0-9a-z]{1,12}$/.test(w36)) return { error: 'malformed cursor' }
    const want = Buffer.from(this.mac(k, `c2.${ts36}.${hash}.${w36}`))
    const got = Buffer.from(mac)
    if (want.length !== got.length || !timingSafeEqual(want, got)) {
      return { error: 'cursor was not issued for this client and connection' }
    }
    return { poll: none ? undefined : { ts: parseInt(ts36, 36), hash: hash === '-' ? '' : hash }, webhook: parseInt(w36, 36) }
  }

  private mac (k: CursorKey, body: string): string {
    return createHmac('sha256', this.key)
      .update(clientKey(k.channel, k.clientId, k.cid, body))
      .digest()
      .subarray(0, MAC_BYTES)
      .toString('base64url')
  }
}
