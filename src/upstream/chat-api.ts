import { Client, Pool, errors as undiciErrors, type buildConnector, type Dispatcher } from 'undici'
import { BridgeError, ErrorCode } from '../socket/errors.js'
import type { Channel } from '../config.js'
import { maskToken, parseUpstreamJson } from './json.js'
import { eventsCall, eventsOf, type EventsQuery, type UpstreamCall } from './calls.js'
import { ChannelTraits } from './traits.js'

/** Largest upstream body read; a larger one is a bad response, not a memory problem. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024

/** How the upstream connections are made and bounded (UPSTREAM_* settings). */
export interface UpstreamPoolOptions {
  /** 'auto': HTTP/2 where TLS (ALPN) offers it; 'h2c': cleartext HTTP/2 by prior knowledge; 'off': HTTP/1.1. */
  http2: 'auto' | 'h2c' | 'off'
  /** Other calls over HTTP/2 too, as `http2` says; otherwise over HTTP/1.1, which answers short calls sooner. */
  callsHttp2?: boolean
  /** Long polls one HTTP/2 connection carries at most. */
  streams: number
  /** Connections for long polls at most. */
  pollConnections: number
  /** Connections for every other call at most. */
  callConnections: number
}

export const DEFAULT_POOLS: UpstreamPoolOptions = { http2: 'auto', streams: 100, pollConnections: 4000, callConnections: 64 }

export interface ChatApiOptions {
  requestTimeoutMs: number
  pollTimeoutMs: number
  pools?: UpstreamPoolOptions
  /** One dispatcher for every call, instead of the pools (tests). */
  dispatcher?: Dispatcher
  /** Told of every finished call: its name, its outcome (HTTP status or error code) and its duration. */
  observe?: (call: string, outcome: string, seconds: number) => void
  /** What is learned of this upstream; a quiet one of its own by default. */
  traits?: ChannelTraits
}

/** Which connection's events a long poll asks for (a FeedKey fits). */
export interface PollQuery { clientId: string, cid: string, all: boolean }

/** Told how one long poll ended: exactly one of the two, once, unless it was cancelled. */
export interface PollSink {
  /** The request has been written to the upstream's connection (not told by every upstream). */
  pollSent?: () => void
  /** The answer's elements, channel token removed. */
  pollAnswered: (elements: Array<Record<string, unknown>>) => void
  pollFailed: (err: BridgeError) => void
}

/** A long poll on its way; cancel() ends it and nothing is told of it afterwards. */
export interface PollCall { cancel: () => void }

/** Anything that can start upstream long polls: the ChatApi, or a script in tests. */
export interface PollUpstream {
  poll: (q: PollQuery, ts: number | undefined, sink: PollSink) => PollCall
}

const ACCEPT_JSON = { accept: 'application/json' }
const SEND_JSON = { accept: 'application/json', 'content-type': 'application/json' }
const EVENTS_CALL: UpstreamCall = { name: 'events', method: 'GET', path: '/events' }

/**
 * The Chat API of one channel. Every answer comes back parsed, with the
 * channel token removed wherever the upstream echoed it; every failure is a
 * BridgeError with the protocol's error code.
 */
export class ChatApi implements PollUpstream {
  readonly channel: Channel
  readonly traits: ChannelTraits
  private readonly base: string
  /** The origin (no token in it) and the path prefix of every call, for undici's dispatch. */
  readonly origin: string
  private readonly basePath: string
  /** Long polls: multiplexed over HTTP/2 where the upstream speaks it. */
  private readonly polls: Dispatcher
  /** Every other call, apart from the polls so that none waits behind a held poll. */
  private readonly calls: Dispatcher
  private readonly ownsDispatcher: boolean
  private readonly opts: ChatApiOptions

  constructor (channel: Channel, opts: ChatApiOptions) {
    this.channel = channel
    this.traits = opts.traits ?? new ChannelTraits()
    this.base = channel.url.replace(/\/+$/, '') + '/' + tokenPath(channel.token)
    this.opts = opts
    this.ownsDispatcher = opts.dispatcher === undefined
    const pools = opts.pools ?? DEFAULT_POOLS
    const url = new URL(this.base)
    const origin = url.origin
    this.origin = origin
    this.basePath = url.pathname.replace(/\/+$/, '')
    this.polls = opts.dispatcher ?? upstreamPool(origin, pools, pools.streams, pools.pollConnections)
    // undici sends a non-idempotent request (POST) on a connection only when nothing else runs on it, so calls take one stream each.
    this.calls = opts.dispatcher ?? upstreamPool(origin, pools.callsHttp2 === true ? pools : { ...pools, http2: 'off' }, 1, pools.callConnections)
  }

  /** One request/response call; rejects with a BridgeError. */
  async call (call: UpstreamCall): Promise<unknown> {
    const body = await this.exchange(call, this.calls, this.opts.requestTimeoutMs)
    // Every Chat API answer is an object (a history may be a bare list); anything else is a proxy or a broken upstream talking.
    if (typeof body !== 'object' || body === null || (Array.isArray(body) && call.name !== 'history')) {
      throw new BridgeError(ErrorCode.UPSTREAM_BAD_RESPONSE, `upstream ${call.name} answered with JSON that is not an object`, { call: call.name })
    }
    return body
  }

  /** One /events call (a catch-up read); resolves with its elements, token removed. */
  async events (q: EventsQuery): Promise<Array<Record<string, unknown>>> {
    const events = eventsOrError(await this.exchange(eventsCall(q), this.polls, this.opts.pollTimeoutMs))
    if (events instanceof BridgeError) throw events
    return events
  }

  /**
   * One /events long poll, driven by callbacks rather than promises: an idle
   * client holds one of these for the whole hold time, so it is kept to one
   * small object on top of undici's own request.
   */
  poll (q: PollQuery, ts: number | undefined, sink: PollSink): PollCall {
    const call = new EventsCall(this, sink)
    this.dispatch(this.polls, 'GET', this.basePath + eventsCall({ clientId: q.clientId, cid: q.cid, all: q.all, ts }).path, null, this.opts.pollTimeoutMs, call)
    return call
  }

  /**
   * What a finished exchange amounts to: its parsed body (token removed), or
   * the BridgeError of its status or of a body that is not JSON. Observed.
   */
  answerOf (call: UpstreamCall, status: number, text: string, retryAfter: string | undefined, started: number): unknown {
    const ms = performance.now() - started
    this.opts.observe?.(call.name, String(status), ms / 1000)
    this.traits.roundTrip(ms)
    // A long poll that expires may be answered 408 rather than an empty 200: it is the same answer.
    if (status === 408 && call.name === 'events') return { events: [] }
    const body = this.parse(text)
    if (status < 200 || status >= 300) return this.statusError(call, status, body, retryAfter, text)
    if (body === undefined) return new BridgeError(ErrorCode.UPSTREAM_BAD_RESPONSE, `upstream ${call.name} answered ${status} with a body that is not JSON`, { call: call.name, status })
    return body
  }

  /** The BridgeError of an exchange that failed before its answer was complete. Observed. */
  failureOf (call: UpstreamCall, err: unknown, started: number): BridgeError {
    const e = this.failure(call, err)
    this.opts.observe?.(call.name, e.code, (performance.now() - started) / 1000)
    return e
  }

  async close (): Promise<void> {
    if (this.ownsDispatcher) await Promise.all([this.polls.destroy(), this.calls.destroy()])
  }

  private async exchange (call: UpstreamCall, dispatcher: Dispatcher, timeoutMs: number): Promise<unknown> {
    let path = this.basePath + call.path
    const query = call.query === undefined ? '' : new URLSearchParams(call.query).toString()
    if (query !== '') path += '?' + query
    return await new Promise((resolve, reject) => {
      const h = new OneCall(this, call, resolve, reject)
      this.dispatch(dispatcher, call.method, path, call.body === undefined ? null : JSON.stringify(call.body), timeoutMs, h)
    })
  }

  private dispatch (dispatcher: Dispatcher, method: 'GET' | 'POST', path: string, body: string | null, timeoutMs: number, h: BodyReader): void {
    try {
      dispatcher.dispatch({
        origin: this.origin,
        path,
        method,
        headers: body === null ? ACCEPT_JSON : SEND_JSON,
        body,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs
      }, h)
    } catch (err) {
      h.onError(err as Error)
    }
  }

  private parse (text: string): unknown {
    return parseUpstreamJson(text, this.channel.token)
  }

  /** The upstream's Date header of an answer: its clock, for where new connections start. */
  dated (header: string | undefined): void {
    this.traits.date(header, Date.now())
  }

  private statusError (call: UpstreamCall, status: number, body: unknown, retryAfter: string | string[] | undefined, text: string): BridgeError {
    const details: Record<string, unknown> = { call: call.name, status }
    let message = `upstream ${call.name} answered ${status}`
    // The platform's answer to a token it does not know, on every method: the channel is refused.
    // The text names the token, so it is recognised here and never passed on.
    if (status === 404 && /config not found/i.test(text.slice(0, 2000))) {
      return new BridgeError(ErrorCode.UPSTREAM_REJECTED, `${message}: the channel token is not known upstream`, { ...details, channelRejected: true })
    }
    if (typeof body === 'object' && body !== null) {
      const b = body as Record<string, unknown>
      if (typeof b.error === 'string') details.upstreamError = b.error.slice(0, 200)
      if (typeof b.message === 'string') message += `: ${b.message.slice(0, 300)}`
    }
    const retryMs = parseRetryAfter(retryAfter)
    if (retryMs !== undefined) details.retryAfterMs = retryMs
    if (status >= 500) return new BridgeError(ErrorCode.UPSTREAM_UNAVAILABLE, message, details)
    return new BridgeError(ErrorCode.UPSTREAM_REJECTED, message, details)
  }

  private failure (call: UpstreamCall, err: unknown): BridgeError {
    if (err instanceof BridgeError) return err
    const details = { call: call.name }
    if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
      return new BridgeError(ErrorCode.UPSTREAM_TIMEOUT, `upstream ${call.name} did not answer in time`, details)
    }
    if (err instanceof undiciErrors.RequestAbortedError || (err instanceof Error && err.name === 'AbortError')) {
      return new BridgeError(ErrorCode.SHUTTING_DOWN, `upstream ${call.name} was aborted`, { ...details, aborted: true })
    }
    if (err instanceof undiciErrors.ResponseExceededMaxSizeError) {
      return new BridgeError(ErrorCode.UPSTREAM_BAD_RESPONSE, `upstream ${call.name} answer is larger than ${MAX_RESPONSE_BYTES} bytes`, details)
    }
    const code = (err as { code?: unknown }).code
    const why = typeof code === 'string' ? code : err instanceof Error ? err.message : 'unknown error'
    return new BridgeError(ErrorCode.UPSTREAM_UNAVAILABLE, `upstream ${call.name} failed: ${maskToken(why, this.channel.token)}`, details)
  }
}

/** The elements of an /events answer, or the error of an answer of the wrong shape. */
function eventsOrError (body: unknown): Array<Record<string, unknown>> | BridgeError {
  return eventsOf(body) ?? new BridgeError(ErrorCode.UPSTREAM_BAD_RESPONSE, 'upstream /events answer has no events array', { call: 'events' })
}

/**
 * One upstream exchange, as an undici dispatch handler: it reads the body,
 * no more than MAX_RESPONSE_BYTES of it (undici bounds HTTP/1.1 bodies
 * itself, not HTTP/2 ones), and ends in answered() or failed(), once,
 * unless cancelled first.
 */
abstract class BodyReader implements Dispatcher.DispatchHandler {
  protected readonly started = performance.now()
  private abortFn: ((err: Error) => void) | undefined
  private status = 0
  private retryAfter: string | undefined
  protected date: string | undefined
  private chunks: Buffer[] | undefined
  private size = 0
  private settled = false

  /** Ends the exchange; nothing is told of it afterwards. */
  cancel (): void {
    if (this.settled) return
    this.settled = true
    this.abortFn?.(new undiciErrors.RequestAbortedError())
  }

  onConnect (abort: (err?: Error) => void): void {
    if (this.settled) abort(new undiciErrors.RequestAbortedError())
    else this.abortFn = abort
  }

  onHeaders (status: number, rawHeaders: Buffer[] | string[] | null): boolean {
    this.status = status
    if (rawHeaders !== null) {
      for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
        const name = String(rawHeaders[i]).toLowerCase()
        if (name === 'date') this.date = String(rawHeaders[i + 1])
        else if (name === 'retry-after' && status >= 300) this.retryAfter = String(rawHeaders[i + 1])
      }
    }
    return true
  }

  onData (chunk: Buffer): boolean {
    this.size += chunk.length
    if (this.size > MAX_RESPONSE_BYTES) {
      this.chunks = undefined
      this.abortFn?.(new undiciErrors.ResponseExceededMaxSizeError())
      return false
    }
    ;(this.chunks ??= []).push(chunk)
    return true
  }

  onComplete (): void {
    if (this.settled) return
    this.settled = true
    const chunks = this.chunks ?? []
    this.chunks = undefined
    const text = chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks, this.size).toString('utf8')
    this.answered(this.status, text, this.retryAfter)
  }

  onError (err: Error): void {
    if (this.settled) return
    this.settled = true
    this.chunks = undefined
    // Over HTTP/2 undici reports the abort its own way: the size is the reason.
    this.failed(this.size > MAX_RESPONSE_BYTES ? new undiciErrors.ResponseExceededMaxSizeError() : err)
  }

  protected abstract answered (status: number, text: string, retryAfter: string | undefined): void
  protected abstract failed (err: unknown): void
}

/** A long poll: the only object the bridge keeps for a held poll. */
class EventsCall extends BodyReader implements PollCall {
  private readonly api: ChatApi
  private readonly sink: PollSink

  constructor (api: ChatApi, sink: PollSink) {
    super()
    this.api = api
    this.sink = sink
  }

  onRequestSent (): void {
    this.sink.pollSent?.()
  }

  protected answered (status: number, text: string, retryAfter: string | undefined): void {
    this.api.dated(this.date)
    const body = this.api.answerOf(EVENTS_CALL, status, text, retryAfter, this.started)
    const events = body instanceof BridgeError ? body : eventsOrError(body)
    if (events instanceof BridgeError) this.sink.pollFailed(events)
    else this.sink.pollAnswered(events)
  }

  protected failed (err: unknown): void {
    this.sink.pollFailed(this.api.failureOf(EVENTS_CALL, err, this.started))
  }
}

/** Any other call, settling a promise. */
class OneCall extends BodyReader {
  private readonly api: ChatApi
  private readonly call: UpstreamCall
  private readonly resolve: (body: unknown) => void
  private readonly reject: (err: BridgeError) => void

  constructor (api: ChatApi, call: UpstreamCall, resolve: (body: unknown) => void, reject: (err: BridgeError) => void) {
    super()
    this.api = api
    this.call = call
    this.resolve = resolve
    this.reject = reject
  }

  protected answered (status: number, text: string, retryAfter: string | undefined): void {
    this.api.dated(this.date)
    const body = this.api.answerOf(this.call, status, text, retryAfter, this.started)
    if (body instanceof BridgeError) this.reject(body)
    else this.resolve(body)
  }

  protected failed (err: unknown): void {
    this.reject(this.api.failureOf(this.call, err, this.started))
  }
}

/**
 * A bounded pool of connections to one upstream origin. Over HTTP/2 a
 * connection carries up to `streams` requests at once; over HTTP/1.1 only
 * one, since undici would otherwise pipeline long polls one behind another.
 * Which protocol a connection speaks is known once it is up (TLS ALPN), so
 * each connection sets its own depth then; new ones start from the last
 * protocol seen.
 */
function upstreamPool (origin: string, o: UpstreamPoolOptions, streams: number, connections: number): Pool {
  let h2: boolean | undefined = o.http2 === 'h2c' ? true : o.http2 === 'off' ? false : undefined
  return new Pool(origin, {
    connections,
    allowH2: o.http2 !== 'off',
    // useH2c is read by undici's connector but missing from its types.
    connect: (o.http2 === 'h2c' ? { useH2c: true } : {}) as buildConnector.BuildOptions,
    keepAliveTimeout: 30_000,
    factory: (url, opts) => {
      const base = (opts as { connect: buildConnector.connector }).connect
      const depth = (isH2: boolean | undefined): number => isH2 === true ? streams : 1
      const client: Client = new Client(url, {
        ...opts,
        pipelining: depth(h2),
        maxConcurrentStreams: Math.max(streams, 100),
        connect: (options, callback) => {
          base(options, (err, socket) => {
            if (err !== null) return callback(err, null)
            h2 = (socket as { alpnProtocol?: string | false }).alpnProtocol === 'h2'
            client.pipelining = depth(h2)
            callback(null, socket)
          })
        }
      })
      return client
    }
  })
}

/** Retry-After in seconds or as an HTTP date, in milliseconds from now. */
export function parseRetryAfter (value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value
  if (v === undefined || v === '') return undefined
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000
  const at = Date.parse(v)
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined
}

/**
 * True for the failures that mean the channel token itself is refused: the
 * platform's "config not found" on any call, or a 401 or 403 on the channel's
 * own /events polls. A 401 or 403 on one client's request is that request's
 * failure alone (an upstream rule may refuse one message), never a reason to
 * close every socket of the channel.
 */
export function isChannelRejected (err: unknown): boolean {
  if (!(err instanceof BridgeError) || err.code !== ErrorCode.UPSTREAM_REJECTED) return false
  if (err.details?.channelRejected === true) return true
  const status = err.details?.status
  return (status === 401 || status === 403) && err.details?.call === 'events'
}

/**
 * The token as a path segment: characters that would end the segment or the
 * path are escaped; the rest, `:` included, goes as it is, as the platform's
 * own clients send it.
 */
export function tokenPath (token: string): string {
  return token.replace(/[/?#%\s]/g, (c) => encodeURIComponent(c))
}
