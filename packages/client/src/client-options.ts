import type { Backoff } from './backoff.js'
import type { Clock } from './clock.js'
import type { TokenSource } from './credential.js'
import type { ClientEnvironment } from './environment.js'
import type { FetchLike } from './http-stream.js'
import type { BackgroundPolicy } from './lifecycle.js'
import type { WebSocketConstructor } from './socket-like.js'
import type { KeyValueStorage } from './storage.js'
import type { TransportName } from './transport-choice.js'

export interface BridgeClientOptions {
  /** The bridge's socket URL (`wss://host/v1/ws`), or a function asked before each connect. */
  url: string | (() => string)
  /** Adds `?channel=` to the URL, for a bridge that serves several bots. */
  channel?: string
  /**
   * The credential. Leave it out in ticket mode: the client keeps the newest
   * ticket of each welcome in `storage`, and refreshes it on the open socket
   * before it expires. In JWT mode, prefer `getToken`; a fixed token here
   * serves until its `exp`, when the bridge closes the socket (4401) and the
   * client stops. A function here is the same as `getToken`.
   */
  auth?: string | TokenSource
  /**
   * JWT mode: returns a fresh token (or undefined when there is none). It is
   * called before every connect, before the open socket's token expires (the
   * new one is sent on that socket, with no reconnect), after the machine
   * slept past the expiry, and after a 4401, once in a row, to reconnect and
   * resume with a new token. Give this or `auth`, not both.
   */
  getToken?: TokenSource
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
  /**
   * The transports to use, in order: `['websocket', 'http']` by default, less
   * those this runtime lacks (no WebSocket class: HTTP only; no fetch:
   * WebSocket only). The HTTP transport (Server-Sent Events down, POSTs up)
   * is taken when a WebSocket fails before its first frame, for networks
   * that block upgrades. `['http']` uses it alone.
   */
  transports?: TransportName[]
  /** The HTTP transport's URL; by default the socket URL with http(s) and `/v1/sse` for `/v1/ws`. */
  httpUrl?: string | (() => string)
  /** The fetch of the HTTP transport; the global one by default. It must stream response bodies (browsers, Node 18+ do). */
  fetch?: FetchLike
  /**
   * How long a WebSocket may take to bring its first frame, when the HTTP
   * transport is there to fall back on, before the client gives up on it and
   * goes over HTTP. Default 5 s.
   */
  transportTimeoutMs?: number
  /** How long the HTTP transport is tried first once it worked where a WebSocket failed. Default 10 minutes; kept in `storage`. */
  rememberTransportMs?: number
  /** How long a request waits for its result, reconnects included. Default 30 s. */
  requestTimeoutMs?: number
  /** How long a new socket may take to be welcomed before it is given up. Default 15 s. */
  connectTimeoutMs?: number
  /** Requests larger than this are refused here rather than closing the socket with 1009. Default 64 KiB, the bridge's default. */
  maxFrameBytes?: number
  /** Reconnect delays: full jitter below min(maxMs, baseMs * 2^n). Default 500 ms and 30 s. */
  backoff?: Partial<Backoff>
  /**
   * In the background: `'stay'` (default) keeps the socket; `'close'` closes it
   * once the app has been hidden for `backgroundGraceMs`, and reconnects and
   * resumes from the cursor when it comes back (the state stays
   * `reconnecting`, with no `delayMs`, meanwhile), losing nothing.
   */
  background?: BackgroundPolicy
  /** How long the app may be hidden before `background: 'close'` closes the socket. Default 30 s: a quick switch of apps costs no reconnect. */
  backgroundGraceMs?: number
  /**
   * The network and visibility of the device: `window`'s online/offline and
   * `document`'s visibilitychange where they exist, nothing elsewhere (Node,
   * React Native). Give one built on `AppState` and NetInfo in React Native,
   * or a fake in tests.
   */
  environment?: ClientEnvironment
  /** The source of jitter, for tests. */
  random?: () => number
  /** The time and timers of every wait the client makes (connect, heartbeat, backoff, requests); the globals by default. For tests. */
  clock?: Clock
}
