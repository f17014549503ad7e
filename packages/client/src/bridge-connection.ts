import { backoffDelay, DEFAULT_BACKOFF, slowDownDelay, type Backoff } from './backoff.js'
import { BridgeRequestError, ClientErrorCode } from './client-errors.js'
import type { ClientEvents } from './client-events.js'
import type { BridgeClientOptions } from './client-options.js'
import { systemClock, type Clock } from './clock.js'
import { CloseCode, closeAction, closeMeaning } from './close-codes.js'
import { ConnectionStateMachine, type ConnectionState } from './connection-state.js'
import { Credential } from './credential.js'
import { Emitter } from './emitter.js'
import { globalEnvironment } from './environment.js'
import { EventStream } from './event-stream.js'
import { readError, readEvent, readFrame, readResult, type RawFrame } from './frame-reader.js'
import type { BridgeEvent, WelcomeFrame } from './frames.js'
import { Dialer } from './dialer.js'
import { Lifecycle } from './lifecycle.js'
import { PendingRequests } from './pending.js'
import { ResumeBook } from './resume-book.js'
import { shut, SOCKET_OPEN, type WebSocketLike } from './socket-like.js'
import { ClientStore, defaultStorage } from './storage.js'
import type { TransportName } from './transport-choice.js'
import { Watchdog } from './watchdog.js'

/** The code this client closes a socket with when it gives up on it; browsers allow 1000 and 3000-4999. */
const GIVE_UP_CODE = 4000

/**
 * The connection of a client to chatapi-bridge: it connects, says hello,
 * resumes from the last event it processed after every reconnect, resends
 * requests that were in flight, and answers each request with a promise.
 * BridgeClient adds a method for each request of the protocol.
 */
export class BridgeConnection extends Emitter<ClientEvents> {
  private readonly credential: Credential
  private readonly all: boolean | undefined
  private readonly dialer: Dialer
  private readonly maxFrameBytes: number
  private readonly backoff: Backoff
  private readonly random: () => number
  private readonly clock: Clock
  private readonly machine = new ConnectionStateMachine((change) => { this.emit('state', change) })
  private readonly resume: ResumeBook
  private readonly pending: PendingRequests
  private readonly streams = new Set<EventStream<BridgeEvent>>()
  private readonly watchdog: Watchdog
  private readonly lifecycle: Lifecycle

  private ws: WebSocketLike | undefined
  /** The transport of the current socket, and whether any frame came on it. */
  private socketOf: { transport: TransportName, heard: boolean } | undefined
  /** Bumped whenever a socket is abandoned, so that late callbacks of an old attempt do nothing. */
  private generation = 0
  /** Failed attempts since the last welcome: the exponent of the backoff. */
  private attempt = 0
  private disposed = false
  private lastWelcome: WelcomeFrame | undefined
  private socketError: string | undefined
  private waiters: Array<{ resolve: (w: WelcomeFrame) => void, reject: (err: Error) => void }> = []
  private reconnectTimer: unknown
  private connectTimer: unknown

  constructor (options: BridgeClientOptions) {
    super()
    this.all = options.all
    this.maxFrameBytes = options.maxFrameBytes ?? 65_536
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff }
    this.random = options.random ?? Math.random
    this.clock = options.clock ?? systemClock
    this.pending = new PendingRequests(this.clock, {
      timeoutMs: options.requestTimeoutMs ?? 30_000,
      maxFrameBytes: this.maxFrameBytes
    })
    const namespace = options.storageKey ?? `${typeof options.url === 'function' ? options.url() : options.url}#${options.channel ?? ''}`
    const store = new ClientStore(options.storage ?? defaultStorage(), namespace)
    this.dialer = new Dialer(options, store, this.clock, this.maxFrameBytes)
    if (options.auth !== undefined && options.getToken !== undefined) throw new TypeError('give auth or getToken, not both')
    this.resume = new ResumeBook(store, options.cid, options.auth === undefined && options.getToken === undefined)
    this.credential = new Credential({
      auth: typeof options.auth === 'string' ? options.auth : undefined,
      // A function as `auth` is what `getToken` is: one source of tokens, asked the same way.
      source: options.getToken ?? (typeof options.auth === 'function' ? options.auth : undefined),
      resume: this.resume,
      clock: this.clock,
      link: {
        send: (frame) => { this.sendRaw(frame) },
        report: (err) => { this.report(err) },
        renew: (reason) => { this.abandon(reason) },
        refreshed: (expiresAt) => { this.emit('credential', { expiresAt }) }
      }
    })
    this.watchdog = new Watchdog(this.clock, (reason) => { this.abandon(reason) })
    this.lifecycle = new Lifecycle({
      environment: options.environment ?? globalEnvironment(),
      policy: options.background ?? 'stay',
      graceMs: options.backgroundGraceMs ?? 30_000,
      clock: this.clock,
      link: { wake: (r) => { this.wake(r) }, hold: (r) => { this.hold(r) }, park: (r) => { this.park(r) }, probe: () => { this.probe() } }
    })
  }

  get state (): ConnectionState { return this.machine.state }
  /** The last welcome, once there was one. */
  get welcome (): WelcomeFrame | undefined { return this.lastWelcome }
  get clientId (): string | undefined { return this.lastWelcome?.clientId }
  get cid (): string | undefined { return this.resume.cid }
  /** The transport of the current connection, or of the last attempt: `'websocket'` or `'http'`. */
  get transport (): TransportName | undefined { return this.socketOf?.transport }

  /**
   * Starts connecting (when closed) and resolves at the next welcome. It
   * keeps trying through failures; it rejects only if the client is closed,
   * by `close()` or by a close code after which retrying cannot help (4401,
   * 4403, 4502, 1003, 1009). After such a code, `connect()` may be called
   * again, with a new credential say.
   */
  async connect (): Promise<WelcomeFrame> {
    if (this.disposed) throw new BridgeRequestError(ClientErrorCode.CLOSED, 'the client was closed')
    if (this.machine.is('open') && this.lastWelcome !== undefined) return this.lastWelcome
    const welcomed = new Promise<WelcomeFrame>((resolve, reject) => { this.waiters.push({ resolve, reject }) })
    if (this.machine.is('closed')) {
      this.attempt = 0
      this.credential.restart()
      this.machine.to('connecting')
      this.lifecycle.start()
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

  /**
   * Any request of the protocol by its type. It is sent now when the client
   * is open, or after the next welcome, and again after every reconnect until
   * its result comes, always with the same id.
   */
  async request (type: string, fields: Record<string, unknown> = {}): Promise<unknown> {
    if (this.machine.is('closed')) {
      throw new BridgeRequestError(ClientErrorCode.CLOSED, this.disposed ? 'the client was closed' : 'not connected: call connect() first')
    }
    const { frame, result } = this.pending.add(type, fields)
    if (this.machine.is('open')) this.sendRaw(frame)
    return await result
  }

  private async openSocket (): Promise<void> {
    if (this.machine.is('closed')) return
    const gen = ++this.generation
    let auth: string | undefined
    try {
      auth = await this.credential.forHello()
    } catch (err) {
      if (gen !== this.generation) return
      this.report(err)
      this.retry({ reason: 'the auth function failed' })
      return
    }
    if (gen !== this.generation) return
    if (auth === undefined && this.credential.mustHaveToken) {
      const reason = 'the credential was refused and no fresh token came'
      this.stop({ code: CloseCode.UNAUTHORIZED, reason }, new BridgeRequestError(ClientErrorCode.CLOSED, reason, { closeCode: CloseCode.UNAUTHORIZED }))
      return
    }
    let ws: WebSocketLike
    const transport = this.dialer.choice.next()
    try {
      ws = this.dialer.dial(transport)
    } catch (err) {
      // An invalid URL is a mistake no retry can mend; a WebSocket refused here (by a page's CSP, say) may leave HTTP.
      const reason = `cannot open a socket: ${errorMessage(err)}`
      if (this.dialer.choice.failed(transport, false, undefined)) return this.retry({ reason: `${reason}; trying the HTTP transport` }, 0)
      this.stop({ reason }, new BridgeRequestError(ClientErrorCode.CLOSED, reason))
      return
    }
    this.ws = ws
    this.socketOf = { transport, heard: false }
    this.socketError = undefined
    this.resume.startSocket()
    ws.onopen = () => {
      if (ws !== this.ws) return
      const hello: Record<string, unknown> = { type: 'hello' }
      if (auth !== undefined) hello.auth = auth
      Object.assign(hello, this.resume.hello())
      if (this.all !== undefined) hello.all = this.all
      ws.send(JSON.stringify(hello))
    }
    ws.onmessage = (ev: { data: unknown }) => { if (ws === this.ws) this.onFrame(ev.data) }
    // Every error is followed by a close event, which is where the client acts.
    ws.onerror = (ev: { message?: unknown }) => { if (ws === this.ws && typeof ev.message === 'string') this.socketError = ev.message }
    ws.onclose = (ev: { code: number, reason: string }) => { if (ws === this.ws) this.onClose(ev.code, ev.reason) }
    const deadline = this.dialer.deadline(transport)
    this.connectTimer = this.clock.setTimeout(() => { this.abandon(this.socketOf?.heard === true ? 'no welcome in time' : deadline.reason) }, deadline.ms)
  }

  private onFrame (data: unknown): void {
    const frame = readFrame(data)
    if (frame instanceof Error) {
      this.report(frame)
      return
    }
    if (this.socketOf !== undefined) this.socketOf.heard = true
    if (this.machine.is('open')) this.watchdog.fed(this.lastWelcome?.heartbeatMs)
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
    if (this.machine.is('open')) return
    this.cancel(this.connectTimer)
    this.attempt = 0
    if (this.socketOf !== undefined) this.dialer.choice.welcomed(this.socketOf.transport)
    const gap = this.resume.welcome(w, this.lastWelcome !== undefined)
    this.lastWelcome = w
    this.watchdog.fed(w.heartbeatMs)
    this.credential.welcomed(w)
    // Requests in flight on the old socket go first, in their order, then whatever listeners send.
    for (const frame of this.pending.frames()) this.sendRaw(frame)
    this.machine.to('open')
    for (const waiter of this.waiters.splice(0)) waiter.resolve(w)
    // A listener of the state event may have closed the client already.
    if (!this.machine.is('open')) return
    this.emit('welcome', w)
    if (gap !== undefined && this.machine.is('open')) this.emit('gap', gap)
  }

  private onEvent (frame: RawFrame): void {
    const ev = readEvent(frame)
    if (ev instanceof Error) {
      this.report(ev)
      return
    }
    this.emit('event', ev)
    for (const s of this.streams) s.push(ev)
    this.resume.passed(ev.cursor)
  }

  private onResult (frame: RawFrame): void {
    const result = readResult(frame)
    if (result instanceof Error) this.report(result)
    else if (!this.credential.onResult(result)) this.pending.settle(result)
  }

  private onErrorFrame (frame: RawFrame): void {
    const { id, error } = readError(frame)
    if (id !== undefined && this.pending.fail(id, error)) return
    this.report(error)
  }

  private onClose (code: number, reason: string): void {
    const fellBack = this.fallBack(code)
    this.detach()
    const why = reason !== '' ? reason : this.socketError ?? closeMeaning(code)
    const action = closeAction(code)
    if (action === 'stop') {
      // With a token function, a fresh token is worth one more hello (the old one expired, say), resuming where it was.
      // Without, a stored ticket that no longer verifies (a development bridge restarted with a new secret, or it
      // expired) leaves nothing to come back as: start over as a new visitor rather than stay closed. Either once:
      // a second refusal in a row is the bridge's final word.
      const refusal = code === CloseCode.UNAUTHORIZED ? this.credential.afterRefusal() : 'stop'
      if (refusal === 'fresh-token') {
        this.retry({ code, reason: `${why}; reconnecting with a fresh token` }, 0)
        return
      }
      if (refusal === 'new-visitor') {
        this.retry({ code, reason: `${why}; the stored ticket no longer verifies, so starting as a new visitor` }, 0)
        return
      }
      this.stop({ code, reason: why }, new BridgeRequestError(ClientErrorCode.CLOSED, `the bridge closed the connection (${code}): ${why}`, { closeCode: code }))
      return
    }
    const delayMs = fellBack ? 0 : action === 'slow-down' ? slowDownDelay(this.backoff, this.random) : undefined
    this.retry({ code, reason: fellBack ? `${why}; trying the HTTP transport` : why }, delayMs)
  }

  /** Tells the transport choice how an attempt that was not welcomed ended; true when the next one should go at once over the other transport. */
  private fallBack (code: number | undefined): boolean {
    if (this.machine.is('open') || this.socketOf === undefined) return false
    return this.dialer.choice.failed(this.socketOf.transport, this.socketOf.heard, code)
  }

  /** Gives up on the current socket (no welcome, or silence) and tries again. */
  private abandon (reason: string): void {
    const ws = this.ws
    if (ws === undefined) return
    const fellBack = this.fallBack(undefined)
    this.detach()
    shut(ws, GIVE_UP_CODE, reason, true)
    this.retry({ reason: fellBack ? `${reason}; trying the HTTP transport` : reason }, fellBack ? 0 : undefined)
  }

  private retry (info: { code?: number, reason: string }, delayMs = backoffDelay(this.attempt, this.backoff, this.random)): void {
    this.attempt++
    this.cancel(this.reconnectTimer)
    this.reconnectTimer = undefined
    const held = this.lifecycle.held()
    // No timer: the lifecycle wakes the client when the network or the foreground is back. No delayMs says so.
    if (held !== undefined) return this.machine.to('reconnecting', { ...info, reason: `${info.reason}; ${held}` })
    // Armed before the state event, so that a listener that calls close() also cancels it.
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = undefined
      void this.openSocket()
    }, delayMs)
    this.machine.to('reconnecting', { ...info, delayMs })
  }

  /** Waiting to reconnect (not with a socket under way, which is left to end): try now, the backoff started over. */
  private wake (reason: string): void {
    if (!this.machine.is('reconnecting') || this.ws !== undefined) return
    this.attempt = 0
    this.retry({ reason }, 0)
  }

  /** Waiting to reconnect: stop the timer; `retry` sees the hold and waits for the wake. */
  private hold (reason: string): void {
    if (this.machine.is('reconnecting') && this.ws === undefined) this.retry({ reason })
  }

  /** Closes the socket (or ends the wait for one) without closing the client, which resumes from its cursor at the wake. */
  private park (reason: string): void {
    if (this.machine.is('closed')) return
    this.generation++
    const ws = this.ws
    this.detach()
    if (ws !== undefined) shut(ws, CloseCode.NORMAL, 'in the background', false)
    this.retry({ reason })
  }

  /** A socket the OS calls open may be dead (frozen in the background, left on the old network): ping it, or give up on one already shut. */
  private probe (): void {
    if (!this.machine.is('open')) return
    if (this.ws?.readyState !== SOCKET_OPEN) return this.abandon('the socket was found shut')
    this.sendRaw('{"type":"ping"}')
    this.watchdog.probe(this.lastWelcome?.heartbeatMs)
  }

  /** Ends every attempt and timer, fails what waits, and goes to `closed`. */
  private stop (info: { code?: number, reason: string }, err: BridgeRequestError): void {
    this.generation++
    this.lifecycle.stop()
    this.cancel(this.reconnectTimer)
    this.reconnectTimer = undefined
    const ws = this.ws
    this.detach()
    if (ws !== undefined) shut(ws, CloseCode.NORMAL, 'bye', false)
    this.pending.failAll(err)
    for (const waiter of this.waiters.splice(0)) waiter.reject(err)
    this.machine.to('closed', info)
  }

  private detach (): void {
    this.ws = undefined
    this.credential.detach()
    this.cancel(this.connectTimer)
    this.connectTimer = undefined
    this.watchdog.stop()
  }

  /** Clears a timer of the clock, if one is set: a clock need not take an empty handle. */
  private cancel (timer: unknown): void {
    if (timer !== undefined) this.clock.clearTimeout(timer)
  }

  private sendRaw (frame: string): void {
    const ws = this.ws
    // Not open (yet, or any more): a request stays pending and goes out after the next welcome.
    if (ws !== undefined && ws.readyState === SOCKET_OPEN) ws.send(frame)
  }

  private report (err: unknown): void {
    this.emit('error', err instanceof Error ? err : new Error(String(err)))
  }

  protected override onListenerError (err: unknown, event: string): void {
    if (event !== 'error') this.report(err)
  }
}

function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
