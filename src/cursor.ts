import { createHash, createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Cursors name a position in one connection's event stream: the upstream time
 * of the last event delivered and a hash of that event. They are signed and
 * bound to (channel, clientId, cid), so a cursor cannot be altered or used by
 * another client. Format: `c1.<ts base36>.<event hash>.<mac>`, about 45 chars.
 */
export interface CursorPosition { ts: number, hash: string }

export interface CursorKey { channel: string, clientId: string, cid: string }

const MAC_BYTES = 12

/** The identity of an event: a short hash of its JSON as the upstream sent it (token removed). */
export function eventHash (json: string): string {
  return createHash('sha256').update(json).digest('base64url').slice(0, 16)
}

export class CursorCodec {
  private readonly key: Buffer
  constructor (key: Buffer) {
    this.key = key
  }

  encode (k: CursorKey, pos: CursorPosition): string {
    const body = `c1.${pos.ts.toString(36)}.${pos.hash}`
    return `${body}.${this.mac(k, body)}`
  }

  /** The position, or a reason why the cursor cannot be used. */
  decode (k: CursorKey, cursor: string): CursorPosition | { error: string } {
    const parts = cursor.split('.')
    if (parts.length !== 4 || parts[0] !== 'c1') return { error: 'malformed cursor' }
    const [, ts36, hash, mac] = parts as [string, string, string, string]
    if (!/^[0-9a-z]{1,11}$/.test(ts36) || !/^[A-Za-z0-9_-]{16}$/.test(hash)) return { error: 'malformed cursor' }
    const want = Buffer.from(this.mac(k, `c1.${ts36}.${hash}`))
    const got = Buffer.from(mac)
    if (want.length !== got.length || !timingSafeEqual(want, got)) {
      return { error: 'cursor was not issued for this client and connection' }
    }
    return { ts: parseInt(ts36, 36), hash }
  }

  private mac (k: CursorKey, body: string): string {
    return createHmac('sha256', this.key)
      .update(`${k.channel}\n${k.clientId}\n${k.cid}\n${body}`)
      .digest()
      .subarray(0, MAC_BYTES)
      .toString('base64url')
  }
}
