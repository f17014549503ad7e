import type { FastifyBaseLogger } from 'fastify'
import { CloseCode, closeReason } from './errors.js'

/**
 * Where a socket is: waiting for its hello, being welcomed (events that come
 * meanwhile queue behind the welcome), open, or closed.
 */
export type SessionState = 'hello' | 'welcoming' | 'open' | 'closed'

/**
 * The part of a `ws` WebSocket a session uses: what a transport must give to
 * carry the protocol. A WebSocket is one as it is; the HTTP transport's
 * event stream is another (src/socket/event-stream-socket.ts).
 */
export interface Wire {
  readonly readyState: number
  readonly OPEN: number
  readonly CLOSED: number
  /** Bytes written that the peer has not taken yet. */
  readonly bufferedAmount: number
  send: (frame: string, cb?: (err?: Error) => void) => void
  /** A sign of life the peer answers with a pong, where the transport has one. */
  ping: () => void
  close: (code: number, reason: string) => void
  /** A cursor the transport itself brought, used when the hello has no `resume`. */
  readonly resumeHint?: string | undefined
  /** Ends the connection at once, as a network failure would. */
  terminate: () => void
  /** 'message' (data, isBinary), 'pong', 'close' (code) and 'error' (err), with the wire as `this`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- ws's own overload for any event takes these
  on: (event: string, listener: (this: any, ...args: any[]) => void) => unknown
  once: (event: string, listener: () => void) => unknown
}

/** The bounds of what goes out to a socket. */
export interface OutputDeps {
  /** Bytes queued to one socket before it counts as behind. */
  outboundQueueBytes: number
  /** How long a socket may stay behind before it is closed with 4409. */
  slowClientMs: number
}

/**
 * What goes out to one WebSocket, and whether its client keeps up: events
 * stop at the queue's bound (the hub keeps the rest), other frames are
 * written past it but count, a socket that stays behind or does not answer
 * pings is closed. The frames that come in, and what they mean, are the
 * Session's.
 */
export abstract class SocketOutput<D extends OutputDeps> {
  protected readonly ws: Wire
  protected readonly d: D
  protected state: SessionState = 'hello'
  /** Frames that came before the welcome was out, and their bytes; they are bounded like the socket's queue. */
  private pending: string[] | undefined
  private pendingBytes = 0
  /** A frame was refused while the welcome was out: the hub is asked for the rest once it is. */
  private pendingFull = false
  private missedPongs = 0
  /** Since when the outbound queue has been full; 0 when it has room. */
  private behindSince = 0

  constructor (ws: Wire, deps: D) {
    this.ws = ws
    this.d = deps
  }

  protected abstract get log (): FastifyBaseLogger
  /** The socket closed (either end): the session lets go of what it holds. */
  protected abstract onClosed (): void
  /** Everything written is flushed: the hub may send what waits. */
  protected abstract onDrained (): void

  /** Only a pong shows that the client reads: anything else could be sent blindly. */
  onPong (): void { this.missedPongs = 0 }

  /** A getter, so that checks after an await are not narrowed away by the compiler. */
  get closed (): boolean { return this.state === 'closed' }

  /** The one place the state changes: hello → welcoming → open, and closed from any of them. */
  protected to (state: SessionState): void { this.state = state }

  /** Bytes written to this socket that the client has not taken yet. */
  get bufferedBytes (): number { return this.ws.bufferedAmount }

  deliver (frame: string): boolean {
    if (this.state === 'welcoming') {
      const pending = (this.pending ??= [])
      pending.push(frame)
      this.pendingBytes += frame.length
      if (this.pendingBytes < this.d.outboundQueueBytes) return true
      // As for a full socket: this frame is the last until the welcome is out; the hub keeps the rest.
      this.pendingFull = true
      return false
    }
    if (this.state !== 'open' || this.ws.readyState !== this.ws.OPEN) return true
    if (this.ws.bufferedAmount + frame.length < this.d.outboundQueueBytes) {
      this.ws.send(frame)
      return true
    }
    // The queue is full: this is the last frame until it drains; the hub keeps the rest.
    this.sendBehind(frame)
    return false
  }

  /** Writes a frame past the queue's bound; the socket counts as behind until it is flushed. */
  private sendBehind (frame: string): void {
    if (this.behindSince === 0) this.behindSince = Date.now()
    this.ws.send(frame, () => { this.onFlushed() })
  }

  /** Called by the shared heartbeat timer every heartbeatMs. */
  heartbeat (): void {
    if (this.state === 'closed') return
    if (this.missedPongs >= 2) {
      this.log.info('no pong for two heartbeats; ending the socket')
      this.ws.terminate()
      return
    }
    if (this.behindSince !== 0 && Date.now() - this.behindSince > this.d.slowClientMs) {
      this.log.info('stayed behind too long; closing so it resumes')
      this.close(CloseCode.TOO_SLOW)
      return
    }
    this.ws.ping()
    // Counted once the data ping goes out too: before the welcome, a transport without a pong of its own (an event
    // stream) has nothing to answer, and the hello timeout is what ends a silent client.
    if (this.state !== 'open') return
    this.missedPongs++
    this.send('{"type":"ping"}')
  }

  /** Cuts the connection without a close handshake, as a network failure would (operators and tests). */
  cut (): void {
    this.ws.terminate()
  }

  close (code: CloseCode): void {
    if (this.state === 'closed') return
    this.ws.close(code, closeReason[code])
    this.onClosed()
  }

  /** Closes with `code` and resolves when the close handshake ends, cutting the socket after `graceMs`. */
  async closeAndWait (code: CloseCode, graceMs: number): Promise<void> {
    if (this.ws.readyState === this.ws.CLOSED) return
    const closed = new Promise<void>((resolve) => { this.ws.once('close', () => { resolve() }) })
    this.close(code)
    const timer = setTimeout(() => { this.ws.terminate() }, graceMs)
    await closed
    clearTimeout(timer)
  }

  /**
   * Writes a frame that cannot wait in the hub (a result, an error, a ping).
   * Past the queue's bound it is still written, and the socket counts as
   * behind, so one that never reads is closed (SLOW_CLIENT_MS); one that lets
   * twice the bound pile up is closed at once.
   */
  protected send (frame: string): void {
    const ws = this.ws
    if (ws.readyState !== ws.OPEN) return
    if (ws.bufferedAmount + frame.length < this.d.outboundQueueBytes) {
      ws.send(frame)
      return
    }
    if (ws.bufferedAmount > 2 * this.d.outboundQueueBytes) {
      this.log.info({ bufferedBytes: ws.bufferedAmount }, 'does not read what it asked for; closing')
      this.close(CloseCode.TOO_SLOW)
      return
    }
    this.sendBehind(frame)
  }

  /** The welcome is out: what came meanwhile follows it, and the hub sends what it held back. */
  protected flushPending (): void {
    const queued = this.pending
    this.pending = undefined
    this.pendingBytes = 0
    if (queued !== undefined) for (const f of queued) this.send(f)
    if (this.pendingFull) {
      this.pendingFull = false
      this.onDrained()
    }
  }

  /** Forgets what waits for the welcome (the socket closed). */
  protected dropPending (): void {
    this.pending = undefined
  }

  /** Everything queued up to the last frame is written: take more from the hub. */
  private onFlushed (): void {
    if (this.closed) return
    this.behindSince = 0
    this.onDrained()
  }
}
