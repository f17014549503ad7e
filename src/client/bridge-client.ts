import { backoffDelay, DEFAULT_BACKOFF, slowDownDelay, type Backoff } from './backoff.js'
import { closeAction, closeMeaning } from './close-codes.js'
import { Emitter } from './emitter.js'
import { BridgeRequestError, ClientErrorCode } from './client-errors.js'
import { EventStream } from './event-stream.js'
import {
  SUBPROTOCOL,
  type BotAnswer, type BridgeEvent, type HistoryMessage, type HistoryOptions, type HistoryResult, type Message,
  type MessageStatus, type ResultFrame, type WelcomeFrame
} from './frames.js'
import { historyMessages } from './history.js'
import { PendingRequests } from './pending.js'
import { ClientStore, defaultStorage, type KeyValueStorage } from './storage.js'

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface StateChange {
  state: ConnectionState
  previous: ConnectionState
  /** The close code of the socket whose end caused the change, if one did. */
  code?: number
  reason?: string
  /** With `reconnecting` (announced again before every try): how long the client waits before it. */
  delayMs?: number
}

export interface ClientEvents {
  /** An event the bridge pushed; the cursor moves past it once every listener has run. */
  event: BridgeEvent
  state: StateChange
  welcome: WelcomeFrame
  /** Continuity was lost (the bridge could not resume): reload what you show from `history()`. */
  gap: { reason: string }
  /** Something went wrong that no promise reports: a malformed frame, a listener that threw, a failing `auth` function. */
  error: Error
}

/**
 * The part of the WHATWG WebSocket the client uses. The browser's WebSocket
 * and the `ws` package's both fit. The handlers take `never` so that either
 * one's event types are accepted.
 */
export interface WebSocketLike {
  readonly readyState: number
  onopen: ((event: never) => void) | null
  onmessage: ((event: never) => void) | null
  onclose: ((event: never) => void) | null
  onerror: ((event: never) => void) | null
  send: (data: string) => void
  close: (code?: number, reason?: string) => void
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike

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
}

/**
 * The only changes of state there are; anything else is a bug. `reconnecting`
 * is entered again before every new try, so that each wait is announced.
 */
const TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  closed: ['connecting'],
  connecting: ['open', 'reconnecting', 'closed'],
  open: ['reconnecting', 'closed'],
  reconnecting: ['reconnecting', 'open', 'closed']
}

/** The code this client closes a socket with when it gives up on it; browsers allow 1000 and 3000-4999. */
const GIVE_UP_CODE = 4000
const OPEN = 1

type Auth = BridgeClientOptions['auth']

/**
 * A client of chatapi-bridge, for browsers and Node. It connects, says
 * hello, resumes from the last event it processed after every reconnect,
 * resends requests that were in flight, and answers each request with a
 * promise. See docs/protocol.md for the protocol it speaks.
 */
export class BridgeClient extends Emitter<ClientEvents> {
  private readonly url: string | (() => string)
  private readonly channel: string | undefined
  private readonly auth: Auth
  private readonly all: boolean | undefined
  private readonly WS: WebSocketConstructor
  private readonly store: ClientStore
  private readonly requestTimeoutMs: number
  private readonly connectTimeoutMs: number
  private readonly maxFrameBytes: number
  private readonly backoff: Backoff
  private readonly random: () => number
  private readonly pending = new PendingRequests()
  private readonly streams = new Set<EventStream<BridgeEvent>>()
  private readonly idPrefix = randomId()

  private current: ConnectionState = 'closed'
  private ws: WebSocketLike | undefined
  /** Bumped whenever a socket is abandoned, so that late callbacks of an old attempt do nothing. */
  private generation = 0
  /** Failed attempts since the last welcome: the exponent of the backoff. */
  private attempt = 0
  private disposed = false
  private cidValue: string | undefined
  private cursor: string | undefined
  private ticket: string | undefined
  private lastWelcome: WelcomeFrame | undefined
  /** Whether the hello of the current socket carried a cursor. */
  private resumeSent = false
  private socketError: string | undefined
  private seq = 0
  private waiters: Array<{ resolve: (w: WelcomeFrame) => void, reject: (err: Error) => void }> = []
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined
  private connectTimer: ReturnType<typeof setTimeout> | undefined
  private watchdog: ReturnType<typeof setTimeout> | undefined

  constructor (options: BridgeClientOptions) {
    super()
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (WS === undefined) throw new TypeError('no global WebSocket here: pass one as the WebSocket option (in Node, the ws package)')
    this.WS = WS
    this.url = options.url
    this.channel = options.channel
    this.auth = options.auth
    this.all = options.all
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000
    this.connectTimeoutMs = options.connectTimeoutMs ?? 15_000
    this.maxFrameBytes = options.maxFrameBytes ?? 65_536
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff }
    this.random = options.random ?? Math.random
    const namespace = options.storageKey ?? `${typeof options.url === 'function' ? options.url() : options.url}#${options.channel ?? ''}`
    this.store = new ClientStore(options.storage ?? defaultStorage(), namespace)
    if (options.auth === undefined) this.ticket = this.store.ticket
    this.cidValue = options.cid
    if (options.cid !== undefined) this.cursor = this.store.cursor(options.cid)
  }

  get state (): ConnectionState { return this.current }
  /** The last welcome, once there was one. */
  get welcome (): WelcomeFrame | undefined { return this.lastWelcome }
  get clientId (): string | undefined { return this.lastWelcome?.clientId }
  get cid (): string | undefined { return this.cidValue }

  /**
   * Starts connecting (when closed) and resolves at the next welcome. It
   * keeps trying through failures; it rejects only if the client is closed,
   * by `close()` or by a close code after which retrying cannot help (4401,
   * 4403, 4502, 1003, 1009). After such a code, `connect()` may be called
   * again, with a new credential say.
   */
  async connect (): Promise<WelcomeFrame> {
    if (this.disposed) throw new BridgeRequestError(ClientErrorCode.CLOSED, 'the client was closed')
    if (this.current === 'open' && this.lastWelcome !== undefined) return this.lastWelcome
    const welcomed = new Promise<WelcomeFrame>((resolve, reject) => { this.waiters.push({ resolve, reject }) })
    if (this.current === 'closed') {
      this.attempt = 0
      this.transition('connecting')
      void this.openSocket()
    }
    return await welcomed
  }

  /** Closes the connection for good: pending requests reject with CLOSED, event iterators end. */
  close (): void {
    if (this.disposed) return
    this.disposed = true
    this.stop({ reason: 'closed by the client' }, new BridgeRequestError(ClientErrorCode.CLOSED, 'the client was closed'))
    for (const s of this.streams) s.end()
    this.streams.clear()
  }

  /** Events as an async iterator; it ends when the client is closed. */
  events (): AsyncIterableIterator<BridgeEvent> {
    const stream: EventStream<BridgeEvent> = new EventStream(() => { this.streams.delete(stream) })
    if (this.disposed) stream.end()
    else this.streams.add(stream)
    return stream
  }

  /** Sends a message and resolves with the bot's answer. */
  async send (message: Message): Promise<BotAnswer> {
    return await this.request('send', messageFields(message)) as BotAnswer
  }

  /** Sends a message; the answer comes later (by webhook), this resolves with its questionId. */
  async sendAsync (message: Message): Promise<{ questionId: string }> {
    return await this.request('sendAsync', messageFields(message)) as { questionId: string }
  }

  /**
   * The client's history: `chat` is the conversation, oldest first, read
   * from whatever shape the server answered in (see `historyMessages`);
   * `body` is that answer as it came.
   */
  async history (options: HistoryOptions = {}): Promise<HistoryResult> {
    const body = await this.request('history', { ...options })
    const messages = isRecord(body) && Array.isArray(body.messages) ? body.messages as HistoryMessage[] : []
    return { chat: historyMessages(body), messages, body }
  }

  async getState (): Promise<unknown> {
    return await this.request('getState')
  }

  async setState (state: unknown): Promise<unknown> {
    return await this.request('setState', { state })
  }

  async getStatus (questionId: string): Promise<MessageStatus> {
    return await this.request('getStatus', { questionId }) as MessageStatus
  }

  async setStatus (questionId: string, status: string): Promise<MessageStatus> {
    return await this.request('setStatus', { questionId, status }) as MessageStatus
  }

  async setStatuses (statuses: MessageStatus[]): Promise<{ statuses: MessageStatus[] }> {
    return await this.request('setStatuses', { statuses }) as { statuses: MessageStatus[] }
  }

  /** How many bot and agent messages the client has not read. */
  async unreadCount (): Promise<number> {
    const result = await this.request('unreadCount') as { count?: unknown }
    return typeof result.count === 'number' ? result.count : 0
  }

  /**
   * Any request of the protocol by its type. It is sent now when the client
   * is open, or after the next welcome, and again after every reconnect until
   * its result comes, always with the same id.
   */
  async request (type: string, fields: Record<string, unknown> = {}): Promise<unknown> {
    if (this.current === 'closed') {
      throw new BridgeRequestError(ClientErrorCode.CLOSED, this.disposed ? 'the client was closed' : 'not connected: call connect() first')
    }
    const id = `${this.idPrefix}-${++this.seq}`
    const frame = JSON.stringify({ ...fields, type, id })
    const bytes = new TextEncoder().encode(frame).length
    if (bytes > this.maxFrameBytes) {
      throw new BridgeRequestError('TOO_LARGE', `the ${type} frame has ${bytes} bytes, more than the ${this.maxFrameBytes} allowed`)
    }
    const result = this.pending.add(id, frame, this.requestTimeoutMs)
    if (this.current === 'open') this.sendRaw(frame)
    return await result
  }

  /** The one place where the state changes, and the `state` event is emitted. */
  private transition (to: ConnectionState, info: Omit<StateChange, 'state' | 'previous'> = {}): void {
    const from = this.current
    if (!TRANSITIONS[from].includes(to)) {
      if (from === to) return
      /* c8 ignore next 2 -- a guard against a bug in this class: no code path asks for another change */
      throw new Error(`no transition from ${from} to ${to}`)
    }
    this.current = to
    this.emit('state', { state: to, previous: from, ...info })
  }

  /** A method, not a property read, so that the compiler does not narrow it across listener calls. */
  private isOpen (): boolean {
    return this.current === 'open'
  }

  private async credential (): Promise<string | undefined> {
    if (typeof this.auth === 'function') return await this.auth()
    return this.ticket ?? this.auth
  }

  private socketUrl (): string {
    const base = typeof this.url === 'function' ? this.url() : this.url
    if (this.channel === undefined) return base
    const url = new URL(base)
    url.searchParams.set('channel', this.channel)
    return url.toString()
  }

  private async openSocket (): Promise<void> {
    if (this.current === 'closed') return
    const gen = ++this.generation
    let auth: string | undefined
    try {
      auth = await this.credential()
    } catch (err) {
      if (gen !== this.generation) return
      this.report(err)
      this.retry({ reason: 'the auth function failed' })
      return
    }
    if (gen !== this.generation) return
    let ws: WebSocketLike
    try {
      ws = new this.WS(this.socketUrl(), SUBPROTOCOL)
    } catch (err) {
      // An invalid URL: a mistake no retry can mend.
      const reason = `cannot open a socket: ${errorMessage(err)}`
      this.stop({ reason }, new BridgeRequestError(ClientErrorCode.CLOSED, reason))
      return
    }
    this.ws = ws
    this.socketError = undefined
    this.resumeSent = this.cursor !== undefined
    ws.onopen = () => {
      if (ws !== this.ws) return
      const hello: Record<string, unknown> = { type: 'hello' }
      if (auth !== undefined) hello.auth = auth
      if (this.cidValue !== undefined) hello.cid = this.cidValue
      if (this.cursor !== undefined) hello.resume = this.cursor
      if (this.all !== undefined) hello.all = this.all
      ws.send(JSON.stringify(hello))
    }
    ws.onmessage = (ev: { data: unknown }) => { if (ws === this.ws) this.onFrame(ev.data) }
    // Every error is followed by a close event, which is where the client acts.
    ws.onerror = (ev: { message?: unknown }) => { if (ws === this.ws && typeof ev.message === 'string') this.socketError = ev.message }
    ws.onclose = (ev: { code: number, reason: string }) => { if (ws === this.ws) this.onClose(ev.code, ev.reason) }
    this.connectTimer = setTimeout(() => { this.abandon('no welcome in time') }, this.connectTimeoutMs)
  }

  private onFrame (data: unknown): void {
    let frame: unknown
    try {
      frame = JSON.parse(typeof data === 'string' ? data : String(data))
    } catch {
      this.report(new Error('the bridge sent a frame that is not JSON'))
      return
    }
    if (!isRecord(frame) || typeof frame.type !== 'string') {
      this.report(new Error('the bridge sent a frame with no type'))
      return
    }
    if (this.current === 'open') this.armWatchdog()
    switch (frame.type) {
      case 'welcome': this.onWelcome(frame as unknown as WelcomeFrame); break
      case 'event': this.onEvent(frame); break
      case 'result': this.onResult(frame); break
      case 'ping': this.sendRaw('{"type":"pong"}'); break
      case 'error': this.onErrorFrame(frame); break
      // 'pong' and types of later versions: a sign of life, nothing more.
    }
  }

  private onWelcome (w: WelcomeFrame): void {
    if (this.current === 'open') return
    clearTimeout(this.connectTimer)
    this.attempt = 0
    if (typeof w.ticket === 'string') {
      this.ticket = w.ticket
      this.store.ticket = w.ticket
    }
    const reconnected = this.lastWelcome !== undefined
    this.cidValue = w.cid
    let gap = w.gap
    // A welcome that did not resume says where this socket's stream starts: resume from there if no event comes.
    if (!w.resumed) this.setCursor(typeof w.cursor === 'string' ? w.cursor : undefined)
    if (gap === undefined && !w.resumed && reconnected && !this.resumeSent) gap = { reason: 'no event had come before the connection dropped, so there was no cursor to resume from' }
    this.lastWelcome = w
    this.armWatchdog()
    // Requests in flight on the old socket go first, in their order, then whatever listeners send.
    for (const frame of this.pending.frames()) this.sendRaw(frame)
    this.transition('open')
    for (const waiter of this.waiters.splice(0)) waiter.resolve(w)
    // A listener of the state event may have closed the client already.
    if (!this.isOpen()) return
    this.emit('welcome', w)
    if (gap !== undefined && this.isOpen()) this.emit('gap', gap)
  }

  private onEvent (frame: Record<string, unknown>): void {
    const inner = frame.event
    if (typeof frame.cursor !== 'string' || !isRecord(inner) || typeof inner.type !== 'string') {
      this.report(new Error('the bridge sent a malformed event frame'))
      return
    }
    const ev: BridgeEvent = { type: inner.type, event: isRecord(inner.event) ? inner.event : {}, cursor: frame.cursor }
    this.emit('event', ev)
    for (const s of this.streams) s.push(ev)
    this.setCursor(frame.cursor)
  }

  private onResult (frame: Record<string, unknown>): void {
    if (typeof frame.id !== 'string' || typeof frame.ok !== 'boolean' || (frame.ok === false && !isRecord(frame.error))) {
      this.report(new Error('the bridge sent a malformed result frame'))
      return
    }
    this.pending.settle(frame as unknown as ResultFrame)
  }

  private onErrorFrame (frame: Record<string, unknown>): void {
    const err = new BridgeRequestError(String(frame.code ?? 'ERROR'), String(frame.message ?? 'error from the bridge'))
    if (typeof frame.id === 'string' && this.pending.fail(frame.id, err)) return
    this.report(err)
  }

  private onClose (code: number, reason: string): void {
    this.detach()
    const why = reason !== '' ? reason : this.socketError ?? closeMeaning(code)
    const action = closeAction(code)
    if (action === 'stop') {
      // A refused ticket is useless from now on: a later connect() starts as a new visitor.
      if (code === 4401 && typeof this.auth !== 'function' && this.ticket !== undefined) {
        this.ticket = undefined
        this.store.ticket = undefined
      }
      this.stop({ code, reason: why }, new BridgeRequestError(ClientErrorCode.CLOSED, `the bridge closed the connection (${code}): ${why}`, { closeCode: code }))
      return
    }
    this.retry({ code, reason: why }, action === 'slow-down' ? slowDownDelay(this.backoff, this.random) : undefined)
  }

  /** Gives up on the current socket (no welcome, or silence) and tries again. */
  private abandon (reason: string): void {
    const ws = this.ws
    if (ws === undefined) return
    this.detach()
    shut(ws, GIVE_UP_CODE, reason, true)
    this.retry({ reason })
  }

  private retry (info: { code?: number, reason: string }, delayMs = backoffDelay(this.attempt, this.backoff, this.random)): void {
    this.attempt++
    clearTimeout(this.reconnectTimer)
    // Armed before the state event, so that a listener that calls close() also cancels it.
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      void this.openSocket()
    }, delayMs)
    this.transition('reconnecting', { ...info, delayMs })
  }

  /** Ends every attempt and timer, fails what waits, and goes to `closed`. */
  private stop (info: { code?: number, reason: string }, err: BridgeRequestError): void {
    this.generation++
    clearTimeout(this.reconnectTimer)
    this.reconnectTimer = undefined
    const ws = this.ws
    this.detach()
    if (ws !== undefined) shut(ws, 1000, 'bye', false)
    this.pending.failAll(err)
    for (const waiter of this.waiters.splice(0)) waiter.reject(err)
    this.transition('closed', info)
  }

  private detach (): void {
    this.ws = undefined
    clearTimeout(this.connectTimer)
    clearTimeout(this.watchdog)
    this.connectTimer = undefined
    this.watchdog = undefined
  }

  /** The bridge pings every heartbeatMs; two intervals without any frame mean the socket is dead. */
  private armWatchdog (): void {
    const heartbeatMs = this.lastWelcome?.heartbeatMs
    if (typeof heartbeatMs !== 'number' || heartbeatMs <= 0) return
    clearTimeout(this.watchdog)
    this.watchdog = setTimeout(() => { this.abandon('no frame from the bridge for two heartbeats') }, 2 * heartbeatMs)
  }

  private setCursor (cursor: string | undefined): void {
    this.cursor = cursor
    if (this.cidValue !== undefined) this.store.setCursor(this.cidValue, cursor)
  }

  private sendRaw (frame: string): void {
    const ws = this.ws
    // Not open (yet, or any more): a request stays pending and goes out after the next welcome.
    if (ws !== undefined && ws.readyState === OPEN) ws.send(frame)
  }

  private report (err: unknown): void {
    this.emit('error', err instanceof Error ? err : new Error(String(err)))
  }

  protected override onListenerError (err: unknown, event: string): void {
    if (event !== 'error') this.report(err)
  }
}

function messageFields (message: Message): Record<string, unknown> {
  if (typeof message === 'string') return { query: message }
  const fields: Record<string, unknown> = 'query' in message ? { query: message.query } : { event: message.event }
  if (message.data !== undefined) fields.data = message.data
  return fields
}

/** Closes a socket; `cut` ends it at once where the class can (the ws package's terminate), for a socket that may be dead. */
function shut (ws: WebSocketLike, code: number, reason: string, cut: boolean): void {
  const terminate = (ws as { terminate?: () => void }).terminate
  try {
    if (cut && typeof terminate === 'function') terminate.call(ws)
    else ws.close(code, reason)
  /* c8 ignore next 3 -- browsers throw on a close code they do not accept; ours are all valid */
  } catch {
    // Nothing more to do with this socket.
  }
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** A prefix that makes request ids unique across tabs and page loads of one client, as the bridge's result cache needs. */
function randomId (): string {
  // Web Crypto: in every browser, and global in Node 20.
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(9))
  return Array.from(bytes, (b) => b.toString(36).padStart(2, '0')).join('')
}
