import { CloseCode } from './errors.js'
import type { Session, SessionRegistry } from './session.js'
import { clientKey } from '../lib/client-key.js'
import { Counts } from '../lib/counts.js'
import { AddressLimits, type AddressLimitOptions } from './address-limits.js'
import { ExpirySchedule } from './expiry-schedule.js'

/** Most slices a heartbeat period is cut into, and the shortest tick. */
const MAX_SLICES = 25
const MIN_TICK_MS = 50

/**
 * Every open socket of this process. One timer beats the heart of all of
 * them, rather than a timer per socket; the sockets are spread over slices
 * of the period, so that ten thousand pings (and their pongs) are not one
 * burst that stalls every other socket's events.
 */
export class Sessions extends Set<Session> implements SessionRegistry {
  private readonly timer: NodeJS.Timeout
  private readonly perClient = new Counts()
  private readonly addresses: AddressLimits
  private readonly slices: Array<Set<Session>>
  /** When each socket's credential expires: one schedule for the process, as the heartbeat is one timer. */
  private readonly expiries = new ExpirySchedule<Session>((s) => { s.credentialExpired() })
  private nextSlice = 0
  private tick = 0

  /**
   * Told when a client's first socket here is counted and when its last is
   * released: what the offline hook's presence in a cluster follows, at a
   * Redis command per change rather than per socket or per tick.
   */
  onPresence: ((channel: string, clientId: string, present: boolean) => void) | undefined

  /** Counts a socket for its client; false when the client already has `max` here. */
  claim (channel: string, clientId: string, max: number): boolean {
    const key = clientKey(channel, clientId)
    if (!this.perClient.claim(key, max)) return false
    if (this.perClient.get(key) === 1) this.onPresence?.(channel, clientId, true)
    return true
  }

  /** Whether the client has a socket here that said hello. */
  hasClient (channel: string, clientId: string): boolean {
    return this.perClient.get(clientKey(channel, clientId)) > 0
  }

  claimAddress (address: string): boolean { return this.addresses.claim(address) }
  releaseAddress (address: string): void { this.addresses.release(address) }
  admitClient (address: string): boolean { return this.addresses.admitClient(address) }

  release (channel: string, clientId: string): void {
    const key = clientKey(channel, clientId)
    this.perClient.release(key)
    if (this.perClient.get(key) === 0) this.onPresence?.(channel, clientId, false)
  }

  expireAt (s: Session, atMs: number): void { this.expiries.set(s, atMs) }

  constructor (heartbeatMs: number, limits: AddressLimitOptions = { maxSockets: Infinity, newClientsPerS: Infinity, newClientsBurst: Infinity }) {
    super()
    this.addresses = new AddressLimits(limits)
    const n = Math.max(1, Math.min(MAX_SLICES, Math.floor(heartbeatMs / MIN_TICK_MS)))
    this.slices = Array.from({ length: n }, () => new Set<Session>())
    // Each slice's turn comes once per heartbeatMs.
    this.timer = setInterval(() => {
      const slice = this.slices[this.tick++ % n] as Set<Session>
      for (const s of slice) s.heartbeat()
    }, heartbeatMs / n)
    this.timer.unref()
  }

  override add (s: Session): this {
    if (this.has(s)) return this
    super.add(s)
    const slice = this.slices[this.nextSlice++ % this.slices.length] as Set<Session>
    slice.add(s)
    s.heartbeatSlice = slice
    return this
  }

  override delete (s: Session): boolean {
    s.heartbeatSlice?.delete(s)
    s.heartbeatSlice = undefined
    this.expiries.delete(s)
    return super.delete(s)
  }

  socketsByChannel (): Map<string, number> {
    const counts = new Map<string, number>()
    for (const s of this) counts.set(s.channel, (counts.get(s.channel) ?? 0) + 1)
    return counts
  }

  outboundBytes (): number {
    let n = 0
    for (const s of this) n += s.bufferedBytes
    return n
  }

  /**
   * Closes every socket with 1012, each at a random moment within `windowMs`,
   * so that clients do not all reconnect (to another instance) in the same
   * second. Resolves when all are closed.
   */
  async drain (windowMs: number, graceMs: number): Promise<void> {
    const closing = [...this].map(async (s) => {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * windowMs))
      await s.closeAndWait(CloseCode.RESTART, graceMs)
    })
    await Promise.all(closing)
  }

  /** Closes every socket with 1012 and waits, at most `graceMs`, for the close handshakes; stragglers are cut. */
  async closeAll (graceMs: number): Promise<void> {
    clearInterval(this.timer)
    this.expiries.stop()
    const closing = [...this].map(async (s) => await s.closeAndWait(CloseCode.RESTART, graceMs))
    await Promise.all(closing)
  }
}
