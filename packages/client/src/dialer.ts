import type { BridgeClientOptions } from './client-options.js'
import type { Clock } from './clock.js'
import { SUBPROTOCOL } from './frames.js'
import { HttpStreamSocket, httpStreamUrl, type FetchLike } from './http-stream.js'
import type { WebSocketConstructor, WebSocketLike } from './socket-like.js'
import type { ClientStore } from './storage.js'
import { TransportChoice, type TransportName } from './transport-choice.js'

/**
 * Opens the sockets of a connection: a WebSocket, or the HTTP transport
 * shaped as one, on the URLs the options give, with the channel added. What
 * this runtime lacks (no WebSocket class in Node 20, no fetch in an old
 * engine) is left out of the transports; with none left, it throws.
 */
export class Dialer {
  readonly choice: TransportChoice
  private readonly o: BridgeClientOptions
  private readonly WS: WebSocketConstructor | undefined
  private readonly fetch: FetchLike | undefined
  private readonly maxFrameBytes: number

  constructor (o: BridgeClientOptions, store: ClientStore, clock: Clock, maxFrameBytes: number) {
    this.o = o
    this.maxFrameBytes = maxFrameBytes
    this.WS = o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    const globalFetch = (globalThis as { fetch?: FetchLike }).fetch
    this.fetch = o.fetch ?? (globalFetch === undefined ? undefined : async (url, init) => await globalFetch(url, init))
    const wanted = o.transports ?? ['websocket', 'http']
    const available = wanted.filter((t) => t === 'websocket' ? this.WS !== undefined : this.fetch !== undefined)
    if (available.length === 0) {
      const lacks = wanted.map((t) => t === 'websocket' ? 'no WebSocket class (pass one as the WebSocket option; in Node, the ws package\'s)' : 'no fetch (pass one as the fetch option)')
      throw new TypeError(`nothing to connect with: ${lacks.length === 0 ? 'the transports option is empty' : lacks.join(', and ')}`)
    }
    this.choice = new TransportChoice({ transports: available, store, clock, rememberMs: o.rememberTransportMs ?? 600_000 })
  }

  /** A socket of `transport`; throws on a URL that is not one. */
  dial (transport: TransportName): WebSocketLike {
    if (transport === 'http') {
      const url = this.o.httpUrl === undefined ? httpStreamUrl(this.socketUrl()) : this.withChannel(this.o.httpUrl)
      return new HttpStreamSocket(url, this.fetch as FetchLike, this.maxFrameBytes)
    }
    const WS = this.WS as WebSocketConstructor
    return new WS(this.socketUrl(), SUBPROTOCOL)
  }

  /**
   * How long an attempt may take to be welcomed, and what its end is called
   * when nothing at all came. A WebSocket with HTTP to fall back on has less
   * time: a proxy that takes the upgrade and passes nothing is common.
   */
  deadline (transport: TransportName): { ms: number, reason: string } {
    const ms = this.o.connectTimeoutMs ?? 15_000
    if (transport === 'http' || this.choice.choices < 2) return { ms, reason: 'no welcome in time' }
    return { ms: Math.min(ms, this.o.transportTimeoutMs ?? 5000), reason: 'no frame over the WebSocket in time' }
  }

  private socketUrl (): string { return this.withChannel(this.o.url) }

  private withChannel (url: string | (() => string)): string {
    const base = typeof url === 'function' ? url() : url
    if (this.o.channel === undefined) return base
    const u = new URL(base)
    u.searchParams.set('channel', this.o.channel)
    return u.toString()
  }
}
