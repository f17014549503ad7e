import type { Clock } from './clock.js'
import type { ClientStore } from './storage.js'

/** A way to reach the bridge: a WebSocket, or the HTTP transport (Server-Sent Events down, POSTs up). */
export type TransportName = 'websocket' | 'http'

/** Close codes of a connection that broke below the protocol: no close frame, a protocol error, a failed TLS handshake. */
const BROKEN = new Set([1002, 1005, 1006, 1015])

export interface TransportChoiceOptions {
  /** The transports to use, in order of preference, already narrowed to those this runtime has: one at least. */
  transports: TransportName[]
  store: ClientStore
  clock: Clock
  /** How long the HTTP transport is used first after it worked where a WebSocket did not. */
  rememberMs: number
}

/**
 * Which transport each attempt uses. WebSocket first; when a WebSocket
 * fails before its first frame (the upgrade refused, the connection cut, or
 * nothing in time), the next attempt goes over HTTP at once. An HTTP
 * transport that is welcomed after that is remembered in the client's
 * storage for `rememberMs`, so that later connections (and page loads) go
 * straight to it; once that has run out, WebSocket is tried first again, and
 * a welcome on it forgets the HTTP transport.
 */
export class TransportChoice {
  private readonly o: TransportChoiceOptions
  /** The transport the next attempt takes when nothing is remembered: the preferred one, until it fails early. */
  private fallback: TransportName | undefined

  constructor (o: TransportChoiceOptions) {
    this.o = o
  }

  /** Whether more than one transport can be tried. */
  get choices (): number { return this.o.transports.length }

  /** The transport of the next attempt. */
  next (): TransportName {
    if (this.fallback !== undefined) return this.fallback
    return this.remembered() ?? this.first
  }

  /**
   * An attempt ended before its welcome. Returns true when the next attempt
   * should go at once over the other transport: a WebSocket that broke
   * before its first frame, where the HTTP transport has not been tried yet
   * since. Any other failure goes back to the preferred order, after the
   * usual backoff.
   */
  failed (name: TransportName, heard: boolean, code: number | undefined): boolean {
    const other = this.o.transports.find((t) => t !== name)
    const early = !heard && (code === undefined || BROKEN.has(code))
    if (name === 'websocket' && early && other !== undefined && this.fallback === undefined) {
      this.fallback = other
      return true
    }
    this.fallback = undefined
    return false
  }

  /** An attempt was welcomed: remember the HTTP transport, or forget it once a WebSocket worked. */
  welcomed (name: TransportName): void {
    this.fallback = undefined
    if (name === 'websocket') this.o.store.transport = undefined
    else if (name !== this.first) this.o.store.transport = `${name}@${this.o.clock.now() + this.o.rememberMs}`
  }

  private get first (): TransportName { return this.o.transports[0] as TransportName }

  private remembered (): TransportName | undefined {
    const value = this.o.store.transport
    if (value === undefined) return undefined
    const at = value.indexOf('@')
    const name = value.slice(0, at) as TransportName
    const until = Number(value.slice(at + 1))
    if (at > 0 && this.o.transports.includes(name) && until > this.o.clock.now()) return name
    // Run out, or from another setup: WebSocket first again.
    this.o.store.transport = undefined
    return undefined
  }
}
