import { randomBytes } from 'node:crypto'
import type { RawData } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import { AuthError, type Authenticator } from './auth.js'
import { CloseCode, ErrorCode } from './errors.js'
import { ChannelRefusedError, FeedLimitError, type FeedKey, type Hub, type Subscriber } from '../feed/hub.js'
import type { CursorCodec, StreamPosition } from '../feed/cursor.js'
import { checkFrame, isRequestType, type AuthFrame, type HelloFrame, type RequestFrame, type WelcomeFrame } from './protocol.js'
import { authProblem, idOf, readFrame, requestProblem, unknownType } from './inbound.js'
import { refreshCredential } from './credential-refresh.js'
import type { Expiring } from './expiry-schedule.js'
import type { Requests } from './requests.js'
import { TokenBucket } from '../lib/token-bucket.js'
import { SocketOutput, type OutputDeps, type Wire } from './socket-output.js'
import type { Metrics } from '../plugins/metrics.js'

/** Where a session counts itself while open: the heartbeat, the per-client cap and shutdown go through it. */
export interface SessionRegistry {
  add: (s: Session) => unknown
  delete: (s: Session) => boolean
  /** Counts a socket for its client; false when the client already has `max` here. */
  claim: (channel: string, clientId: string, max: number) => boolean
  release: (channel: string, clientId: string) => void
  /** Counts a socket for its source address; false when the address has as many as it may. */
  claimAddress: (address: string) => boolean
  releaseAddress: (address: string) => void
  /** Takes one of the address's new clients; false when it made as many as it may for now. */
  admitClient: (address: string) => boolean
  /** Closes the socket with 4401 at `atMs` (epoch ms), in place of any earlier expiry; undone by `delete`. */
  expireAt: (s: Session, atMs: number) => void
}

export interface SessionDeps extends OutputDeps {
  auth: Authenticator
  hub: Hub
  requests: Requests
  cursors: CursorCodec
  log: FastifyBaseLogger
  helloTimeoutMs: number
  heartbeatMs: number
  rateLimitPerS: number
  rateLimitBurst: number
  maxSocketsPerClient: number
  /** Every open session, for the heartbeat, the per-client cap and shutdown. */
  registry: SessionRegistry
  metrics?: Metrics | undefined
}

/** Bad frames in a row after which the socket is closed: one mistake is answered, a stream of them is abuse. */
const MAX_BAD_FRAMES = 10

/**
 * Close codes counted by their own label; any other code a client sends in
 * its close frame is counted as `other`, so clients cannot add labels.
 */
const CLOSE_LABELS = new Set<number>([...Object.values(CloseCode), 1005, 1006])
const closeLabel = (code: number): string => CLOSE_LABELS.has(code) ? String(code) : 'other'

/** One WebSocket: hello and auth, its subscription to the hub, its requests, its heartbeat. */
export class Session extends SocketOutput<SessionDeps> implements Subscriber, Expiring {
  readonly channel: string
  /** Where the socket comes from (the client's address, through a trusted proxy's header where set). */
  private address: string
  private key: FeedKey | undefined
  /** The socket's child logger, made on first use (see `log`). */
  private logger: FastifyBaseLogger | undefined
  private sessionId: string | undefined
  private helloTimer: NodeJS.Timeout | undefined
  private badFrames = 0
  private readonly bucket: TokenBucket
  private limitedInRow = 0
  /** The part of the heartbeat period this socket is pinged in (kept by Sessions). */
  heartbeatSlice: Set<Session> | undefined
  /** When its credential expires, in epoch ms, 0 before the hello's is known (kept by the registry's schedule). */
  expiresAt = 0

  constructor (ws: Wire, channel: string, address: string, deps: SessionDeps) {
    super(ws, deps)
    this.channel = channel
    this.address = address
    deps.registry.add(this)
    this.bucket = new TokenBucket(deps.rateLimitPerS, deps.rateLimitBurst, Date.now())
    this.helloTimer = setTimeout(helloTimedOut, deps.helloTimeoutMs, this)
    // Module functions rather than closures: an idle socket should cost as little as it can.
    ;(ws as SessionSocket)[kSession] = this
    ws.on('message', onWsMessage)
    ws.on('pong', onWsPong)
    ws.on('close', onWsClose)
    ws.on('error', onWsError)
    if (!deps.registry.claimAddress(address)) {
      this.address = ''
      this.log.info({ address }, 'too many sockets from this address')
      this.close(CloseCode.TRY_AGAIN_LATER)
    }
  }

  /** Listeners of the socket (see the module functions below). */
  onSocketClose (code: number): void {
    this.d.metrics?.closes.inc({ code: closeLabel(code) })
    this.onClosed()
  }

  onSocketError (err: Error): void {
    // ws closes the socket itself after an error (1009 for an oversized frame).
    this.log.info({ err: err.message }, 'socket error')
  }

  /**
   * Made when first needed: most sockets never log, and a child logger with
   * its bindings per idle socket is a good part of the memory it costs.
   */
  protected get log (): FastifyBaseLogger {
    this.sessionId ??= randomBytes(6).toString('base64url')
    this.logger ??= this.d.log.child(this.key === undefined
      ? { session: this.sessionId, channel: this.channel }
      : { session: this.sessionId, channel: this.channel, clientId: this.key.clientId, cid: this.key.cid })
    return this.logger
  }

  upstreamRejected (): void {
    this.close(CloseCode.UPSTREAM_REJECTED_CHANNEL)
  }

  tooSlow (): void {
    this.log.info('fell behind further than the events kept in memory')
    this.close(CloseCode.TOO_SLOW)
  }

  /** No fresh credential came before the last one expired: the socket is no longer anybody's. */
  credentialExpired (): void {
    this.log.info('credential expired')
    this.close(CloseCode.UNAUTHORIZED)
  }

  protected onDrained (): void {
    if (this.key !== undefined) this.d.hub.drained(this.key, this)
  }

  protected onClosed (): void {
    if (this.state === 'closed') return
    this.to('closed')
    clearTimeout(this.helloTimer)
    this.helloTimer = undefined
    this.dropPending()
    this.d.registry.delete(this)
    if (this.address !== '') this.d.registry.releaseAddress(this.address)
    if (this.key !== undefined) {
      this.d.registry.release(this.channel, this.key.clientId)
      this.d.hub.unsubscribe(this.key, this)
    }
  }


  onMessage (data: RawData | string, isBinary: boolean): void {
    if (this.state === 'closed') return
    if (isBinary) {
      this.close(CloseCode.UNSUPPORTED_DATA)
      return
    }
    const read = readFrame(data.toString())
    if ('problem' in read) {
      this.badFrame(read.problem, read.id)
      return
    }
    const { type, frame } = read
    if (type === 'pong') { this.onPong(); return }
    if (type === 'ping') { this.onPing(); return }
    if (type === 'hello') { this.onHello(frame); return }
    if (type === 'auth') { this.onAuth(frame); return }
    if (!isRequestType(type)) {
      this.badFrame(unknownType(type), idOf(frame))
      return
    }
    this.onRequest(frame as RequestFrame)
  }

  /** A ping is answered like a request is: after hello, and within the rate limit. */
  private onPing (): void {
    if (this.state === 'hello') {
      this.badFrame('send hello first')
      return
    }
    if (!this.admit()) {
      this.limited()
      return
    }
    this.send('{"type":"pong"}')
  }

  private onRequest (frame: RequestFrame): void {
    if (!this.admitRequest(frame, () => requestProblem(frame))) return
    const key = this.key as FeedKey
    this.d.requests.handle({ channel: this.channel, clientId: key.clientId, cid: key.cid, gone: () => this.closed }, frame).then(
      (result) => {
        this.d.metrics?.requests.inc({ type: frame.type, result: result.ok ? 'ok' : 'error' })
        this.send(JSON.stringify(result))
      },
      (err: unknown) => { this.log.error({ err }, 'request handling failed') }
    )
  }

  /** A fresh credential: the socket lives on to its expiry, for the same client only. */
  private onAuth (frame: object): void {
    if (!this.admitRequest(frame, () => authProblem(frame))) return
    const { id, auth } = frame as AuthFrame
    refreshCredential(this.d.auth, (this.key as FeedKey).clientId, auth).then(
      (refresh) => {
        if (this.closed) return
        this.d.metrics?.requests.inc({ type: 'auth', result: refresh.ok ? 'ok' : 'error' })
        if (!refresh.ok) {
          this.log.info({ reason: refresh.message }, 'fresh credential refused')
          this.sendResultError(id, refresh.code, refresh.message)
          return
        }
        this.d.registry.expireAt(this, refresh.result.expiresAt)
        this.send(JSON.stringify({ type: 'result', id, ok: true, result: refresh.result }))
      },
      (err: unknown) => { this.log.error({ err }, 'credential refresh failed') }
    )
  }

  /**
   * What every request passes before it is handled: the welcome was sent,
   * its fields are right (`problem` is asked only then), and it is within
   * the rate limit. A refused one is answered here.
   */
  private admitRequest (frame: object, problem: () => string | undefined): boolean {
    const id = idOf(frame)
    if (this.state !== 'open') {
      this.badFrame('send hello and wait for welcome first', id, ErrorCode.NOT_READY)
      return false
    }
    const wrong = problem()
    if (wrong !== undefined) {
      this.badFrame(wrong, id)
      return false
    }
    this.badFrames = 0
    if (!this.admit()) {
      this.limited(id)
      return false
    }
    this.limitedInRow = 0
    return true
  }

  private onHello (frame: object): void {
    if (this.state !== 'hello') {
      this.badFrame('hello was already received')
      return
    }
    const problem = checkFrame('hello', frame)
    if (problem !== null) {
      this.badFrame(`hello: ${problem}`)
      return
    }
    this.to('welcoming')
    clearTimeout(this.helloTimer)
    // A cleared timer kept in a field still holds its object and arguments for the socket's life.
    this.helloTimer = undefined
    this.welcome(frame as HelloFrame).catch((err: unknown) => {
      if (err instanceof AuthError) {
        this.d.metrics?.hellos.inc({ channel: this.channel, result: 'unauthorized' })
        this.log.info({ reason: err.message }, 'hello refused')
        this.close(CloseCode.UNAUTHORIZED)
        return
      }
      this.d.metrics?.hellos.inc({ channel: this.channel, result: 'error' })
      this.log.error({ err }, 'hello failed')
      this.close(CloseCode.INTERNAL_ERROR)
    })
  }

  private async welcome (hello: HelloFrame): Promise<void> {
    const identity = await this.d.auth.authenticate(hello.auth)
    if (this.closed) return
    // From now on, even while the welcome is prepared: a socket never outlives its credential.
    this.d.registry.expireAt(this, identity.expiresAt)
    const cid = hello.cid ?? randomBytes(9).toString('base64url')
    const key: FeedKey = { channel: this.channel, clientId: identity.clientId, cid, all: hello.all ?? true }
    // A transport may know a cursor of its own (an event stream's Last-Event-ID); the hello's comes first.
    const cursor = hello.resume ?? this.ws.resumeHint
    let resume: StreamPosition | undefined
    let gap: string | undefined
    if (cursor !== undefined) {
      const pos = this.d.cursors.decode(key, cursor)
      if ('error' in pos) gap = pos.error
      else resume = pos
    }
    if (identity.fresh === true && !this.d.registry.admitClient(this.address)) {
      this.log.info('too many new clients from this address')
      this.d.metrics?.hellos.inc({ channel: this.channel, result: 'busy' })
      this.close(CloseCode.TRY_AGAIN_LATER)
      return
    }
    if (!this.d.registry.claim(this.channel, key.clientId, this.d.maxSocketsPerClient)) {
      this.log.info('too many sockets for this client')
      this.d.metrics?.hellos.inc({ channel: this.channel, result: 'too_many_sockets' })
      this.close(CloseCode.TOO_MANY_FRAMES)
      return
    }
    this.key = key
    // Log lines from here on carry the client and cid.
    this.logger = undefined
    let sub
    try {
      sub = await this.d.hub.subscribe(key, this, resume)
    } catch (err) {
      if (err instanceof ChannelRefusedError) {
        // Logged once for the channel, where the refusal was seen; not once per socket.
        this.d.metrics?.hellos.inc({ channel: this.channel, result: 'channel_refused' })
        this.close(CloseCode.UPSTREAM_REJECTED_CHANNEL)
        return
      }
      if (!(err instanceof FeedLimitError)) throw err
      this.log.warn({ reason: err.message }, 'refusing the socket for now')
      this.d.metrics?.hellos.inc({ channel: this.channel, result: 'busy' })
      this.close(CloseCode.TRY_AGAIN_LATER)
      return
    }
    if (this.closed) return
    const welcome: WelcomeFrame = {
      type: 'welcome',
      clientId: key.clientId,
      cid,
      resumed: sub.resumed,
      heartbeatMs: this.d.heartbeatMs,
      channel: this.channel,
      expiresAt: identity.expiresAt
    }
    if (identity.ticket !== undefined) welcome.ticket = identity.ticket
    if (sub.position !== undefined) welcome.cursor = this.d.cursors.encode(key, sub.position)
    if (cursor !== undefined && !sub.resumed) welcome.gap = { reason: gap ?? sub.gap ?? 'cannot resume' }
    this.send(JSON.stringify(welcome))
    this.to('open')
    this.flushPending()
    this.d.metrics?.hellos.inc({ channel: this.channel, result: 'welcome' })
    if (cursor !== undefined) this.d.metrics?.resumes.inc({ outcome: sub.resumed ? 'resumed' : 'gap' })
    // Only when it is written: the session's child logger is made on first use.
    if (this.d.log.level === 'debug' || this.d.log.level === 'trace') this.log.debug({ resumed: sub.resumed }, 'welcome')
  }

  /** A token bucket per socket: a burst is fine, a sustained flood is not. */
  private admit (): boolean {
    return this.bucket.take(Date.now())
  }

  /** Past the rate limit: told so, and closed when it keeps on. */
  private limited (id?: string): void {
    this.d.metrics?.rateLimited.inc()
    const message = `more than ${this.d.rateLimitBurst} requests at once or ${this.d.rateLimitPerS} per second`
    if (id !== undefined) this.sendResultError(id, ErrorCode.RATE_LIMITED, message)
    else this.send(JSON.stringify({ type: 'error', code: ErrorCode.RATE_LIMITED, message }))
    if (++this.limitedInRow > this.d.rateLimitBurst) {
      this.log.info('kept sending past the rate limit; closing')
      this.close(CloseCode.TOO_MANY_FRAMES)
    }
  }

  private badFrame (message: string, id?: string, code: ErrorCode = ErrorCode.BAD_REQUEST): void {
    this.badFrames++
    if (id !== undefined) this.sendResultError(id, code, message)
    else this.send(JSON.stringify({ type: 'error', code, message }))
    if (this.badFrames >= MAX_BAD_FRAMES) {
      this.log.info('too many bad frames in a row; closing')
      this.close(CloseCode.TOO_MANY_FRAMES)
    }
  }

  private sendResultError (id: string, code: string, message: string): void {
    this.send(JSON.stringify({ type: 'result', id, ok: false, error: { code, message } }))
  }
}

const kSession = Symbol('session')
type SessionSocket = Wire & { [kSession]: Session }

function helloTimedOut (s: Session): void { s.close(CloseCode.HELLO_TIMEOUT) }
const sessionOf = (ws: Wire): Session => (ws as SessionSocket)[kSession]
function onWsMessage (this: Wire, data: RawData | string, isBinary: boolean): void { sessionOf(this).onMessage(data, isBinary) }
function onWsPong (this: Wire): void { sessionOf(this).onPong() }
function onWsClose (this: Wire, code: number): void { sessionOf(this).onSocketClose(code) }
function onWsError (this: Wire, err: Error): void { sessionOf(this).onSocketError(err) }
