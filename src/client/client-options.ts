import type { Backoff } from './backoff.js'
import type { Clock } from './clock.js'
import type { WebSocketConstructor } from './socket-like.js'
import type { KeyValueStorage } from './storage.js'

export interface BridgeClientOptions {
  /** The bridge's socket URL (`wss://host/v1/ws`), or a function asked before each connect. */
  url: string | (() => string)
  /** Adds `?channel=` to the URL, for a bridge that serves several bots. */
  channel?: string
  /**
   * The credential. Leave it out in ticket mode: the client keeps the newest
   * ticket of each welcome in `storage`. In JWT mode, give the token, or a
   * function that returns a fresh one; it is called before every connect.
   */
  auth?: string | (() => string | undefined | Promise<string | undefined>)
  /** The connection id; kept across reconnects. The bridge picks one when it is left out. */
  cid?: string
  /** Every event of the client (default) or agent replies only. */
  all?: boolean
  /** Where the ticket and cursors are kept: `localStorage` in a browser, memory elsewhere. */
  storage?: KeyValueStorage
  /** Namespace of the stored values; defaults to the URL (a getter's first answer) and channel. */
  storageKey?: string
  /** The WebSocket class; the global one by default. In Node, pass the `ws` package's. */
  WebSocket?: WebSocketConstructor
  /** How long a request waits for its result, reconnects included. Default 30 s. */
  requestTimeoutMs?: number
  /** How long a new socket may take to be welcomed before it is given up. Default 15 s. */
  connectTimeoutMs?: number
  /** Requests larger than this are refused here rather than closing the socket with 1009. Default 64 KiB, the bridge's default. */
  maxFrameBytes?: number
  /** Reconnect delays: full jitter below min(maxMs, baseMs * 2^n). Default 500 ms and 30 s. */
  backoff?: Partial<Backoff>
  /** The source of jitter, for tests. */
  random?: () => number
  /** The time and timers of every wait the client makes (connect, heartbeat, backoff, requests); the globals by default. For tests. */
  clock?: Clock
}
