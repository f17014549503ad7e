import http2 from 'node:http2'
import { errors as undiciErrors, type Dispatcher } from 'undici'
import type { BodyReader } from './body-reader.js'

/** A session idle this long is closed, as undici does with its keep-alive connections. */
const IDLE_MS = 30_000
const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_DEFAULT_WEIGHT } = http2.constants
/**
 * A poll's stream options, whole: Node copies them and fills in each
 * priority field left out, which grew the copy's properties on every poll.
 */
const POLL_STREAM = { endStream: true, weight: NGHTTP2_DEFAULT_WEIGHT, parent: 0, exclusive: false, silent: false }

/** What a session and its polls ask of the sessions of one origin (H2Polls). */
export interface Sessions {
  /** Set once destroyed: what was under way fails as destroyed. */
  readonly closed: boolean
  /** How long connecting, or answering a ping, may take. */
  readonly timeoutMs: number
  /** Puts a poll on a session with room, a new one, or in the queue. */
  send: (x: Exchange) => void
  /** A stream ended: a waiting poll may go. */
  freed: () => void
  /** A session closed. */
  dropped: (link: Link) => void
}

/** One HTTP/2 session and how many of its streams are taken. */
export class Link {
  readonly polls: Sessions
  readonly session: http2.ClientHttp2Session
  active = 0
  max: number
  /** False once the server said GOAWAY or the session failed: no new stream goes on it. */
  open = true
  private idle: NodeJS.Timeout | undefined
  /** True while a ping asks whether the session is alive. */
  checking = false
  /** Until the server's first SETTINGS, or a ping's answer: when it fires, the session is given up. */
  private deadline: NodeJS.Timeout | undefined
  private settled = false

  constructor (polls: Sessions, session: http2.ClientHttp2Session, streams: number) {
    this.polls = polls
    this.session = session
    this.max = streams
    const s = session as LinkedSession
    s[kLink] = this
    session.on('error', onSessionError)
    session.on('goaway', onGoaway)
    session.on('close', onSessionClose)
    session.on('remoteSettings', onRemoteSettings)
    // A server speaks first with its SETTINGS; a connection that gets none is not up, whatever TCP says.
    this.deadline = setTimeout(giveUp, polls.timeoutMs, this, 'with its settings')
  }

  /** The server's SETTINGS, or the answer to a ping: the session is alive. */
  alive (): void {
    clearTimeout(this.deadline)
    this.deadline = undefined
    this.checking = false
    this.settled = true
  }

  /** A poll on this session timed out: the session answers a ping in time, or goes. */
  check (): void {
    if (!this.settled || this.checking || !this.open || this.session.destroyed) return
    this.checking = true
    this.deadline = setTimeout(giveUp, this.polls.timeoutMs, this, 'a ping')
    try {
      this.session.ping((err) => {
        if (err === null) this.alive()
        else giveUp(this, 'a ping')
      })
    } catch {
      this.alive()
    }
  }

  take (x: Exchange): void {
    clearTimeout(this.idle)
    this.idle = undefined
    let stream: http2.ClientHttp2Stream
    try {
      stream = this.session.request({ ':method': x.opts.method, ':path': x.opts.path, ...x.opts.headers as Record<string, string> }, POLL_STREAM)
    } catch (err) {
      // The session closed under us: on another one, once.
      this.open = false
      if (x.retry()) this.polls.send(x)
      else x.fail(err as Error)
      return
    }
    this.active++
    x.attach(this, stream)
  }

  release (): void {
    this.active--
    if (this.active === 0 && this.open) this.idle = setTimeout(closeIdle, IDLE_MS, this)
    this.polls.freed()
  }

  gone (): void {
    this.open = false
    clearTimeout(this.idle)
    clearTimeout(this.deadline)
    this.polls.dropped(this)
  }
}

const kLink = Symbol('link')
const kExchange = Symbol('exchange')
type LinkedSession = http2.ClientHttp2Session & { [kLink]: Link }
type ExchangeStream = http2.ClientHttp2Stream & { [kExchange]: Exchange }

function closeIdle (link: Link): void {
  if (link.active !== 0) return
  link.open = false
  link.session.close()
}

/** The session did not come up, or answer its ping, in time: its polls fail, and new ones go on another. */
function giveUp (link: Link, what: string): void {
  link.open = false
  link.session.destroy(new SessionTimeoutError(`the upstream's HTTP/2 connection did not answer ${what} within ${link.polls.timeoutMs} ms`))
}

function onSessionError (this: LinkedSession): void {
  // Each stream of the session is told of the error itself.
  this[kLink].open = false
}

function onGoaway (this: LinkedSession): void {
  this[kLink].open = false
}

function onSessionClose (this: LinkedSession): void {
  this[kLink].gone()
}

function onRemoteSettings (this: LinkedSession, settings: http2.Settings): void {
  const link = this[kLink]
  if (!link.checking) link.alive()
  const most = settings.maxConcurrentStreams
  if (typeof most === 'number' && most > 0) link.max = Math.min(link.max, most)
}

/** One poll on its way: the handler, the stream that carries it, and its deadline. */
export class Exchange {
  readonly polls: Sessions
  readonly opts: Dispatcher.DispatchOptions
  readonly handler: BodyReader
  done = false
  private link: Link | undefined
  private stream: ExchangeStream | undefined
  private timer: NodeJS.Timeout | undefined
  private headersSeen = false
  private retried = false
  private error: Error | undefined

  constructor (polls: Sessions, opts: Dispatcher.DispatchOptions, handler: BodyReader) {
    this.polls = polls
    this.opts = opts
    this.handler = handler
    handler.onConnect((err?: Error) => { this.abort(err ?? new undiciErrors.RequestAbortedError()) })
  }

  deadline (ms: number): void {
    if (!this.done) this.timer = setTimeout(expire, ms, this)
  }

  attach (link: Link, stream: http2.ClientHttp2Stream): void {
    this.link = link
    const s = stream as ExchangeStream
    s[kExchange] = this
    this.stream = s
    // On a connected session the stream is ready (has its id) before request() returns.
    if (s.pending) s.on('ready', onStreamReady)
    else process.nextTick(onNextTickSent, this)
    s.on('response', onStreamResponse)
    s.on('data', onStreamData)
    s.on('end', onStreamEnd)
    s.on('error', onStreamError)
    s.on('close', onStreamClose)
  }

  /** Once per exchange: a refused poll may go again. */
  retry (): boolean {
    if (this.retried || this.done) return false
    this.retried = true
    this.link = undefined
    this.stream = undefined
    return true
  }

  headers (h: http2.IncomingHttpHeaders): void {
    this.headersSeen = true
    const raw: string[] = []
    if (typeof h.date === 'string') raw.push('date', h.date)
    const retryAfter = h['retry-after']
    if (typeof retryAfter === 'string') raw.push('retry-after', retryAfter)
    this.handler.onHeaders(Number(h[':status']), raw)
  }

  completed (): void {
    // A stream ended without an answer (its session destroyed) fails when it closes.
    if (this.done || !this.headersSeen) return
    this.finish()
    this.handler.onComplete()
  }

  errored (err: Error): void {
    this.error ??= err
  }

  /** The stream is closed: ended, failed, refused, or reset by the server. */
  closed (rstCode: number): void {
    if (this.done) return
    const link = this.link as Link
    if (!this.headersSeen && rstCode === NGHTTP2_REFUSED_STREAM && this.retry()) {
      link.release()
      this.polls.send(this)
      return
    }
    // Node's error for a reset stream says no more than its code.
    const plainReset = this.error === undefined || (rstCode !== 0 && (this.error as { code?: string }).code === 'ERR_HTTP2_STREAM_ERROR')
    this.fail(this.polls.closed ? new undiciErrors.ClientDestroyedError() : plainReset ? new StreamClosedError(rstCode) : this.error as Error)
  }

  fail (err: Error): void {
    if (this.done) return
    this.finish()
    this.handler.onError(err)
  }

  /** Given to the poll's handler waiting on this session: it goes to the fallback instead. */
  handOff (): void {
    clearTimeout(this.timer)
    this.done = true
  }

  abort (err: Error): void {
    if (this.done) return
    // Out of time, here or by the handler's own deadline: is the session still alive?
    if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) this.link?.check()
    const stream = this.stream
    this.fail(err)
    if (stream !== undefined && !stream.closed) stream.close(NGHTTP2_CANCEL)
  }

  expired (): void {
    this.timer = undefined
    this.abort(this.headersSeen ? new undiciErrors.BodyTimeoutError() : new undiciErrors.HeadersTimeoutError())
  }

  sent (): void {
    this.handler.onRequestSent()
  }

  private finish (): void {
    this.done = true
    clearTimeout(this.timer)
    this.timer = undefined
    const link = this.link
    this.link = undefined
    link?.release()
  }
}

class SessionTimeoutError extends Error {
  readonly code = 'UPSTREAM_SESSION_TIMEOUT'
}

/** The server reset a stream without an answer. */
class StreamClosedError extends Error {
  readonly code = 'UPSTREAM_STREAM_RESET'
  constructor (rstCode: number) {
    super(rstCode === 0 ? 'the upstream closed the stream without an answer' : `stream reset by the upstream (HTTP/2 code ${rstCode})`)
  }
}

function expire (x: Exchange): void { x.expired() }
function onNextTickSent (x: Exchange): void { if (!x.done) x.sent() }
function onStreamReady (this: ExchangeStream): void { this[kExchange].sent() }
function onStreamResponse (this: ExchangeStream, h: http2.IncomingHttpHeaders): void { this[kExchange].headers(h) }
function onStreamData (this: ExchangeStream, chunk: Buffer): void { if (!this[kExchange].done) this[kExchange].handler.onData(chunk) }
function onStreamEnd (this: ExchangeStream): void { this[kExchange].completed() }
function onStreamError (this: ExchangeStream, err: Error): void { this[kExchange].errored(err) }
function onStreamClose (this: ExchangeStream): void { this[kExchange].closed(this.rstCode ?? 0) }
