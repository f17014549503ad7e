import { Client, Pool, request, errors as undiciErrors, type buildConnector, type Dispatcher } from 'undici'
import { BridgeError, ErrorCode } from '../errors.js'
import type { Channel } from '../config.js'
import { maskToken, parseUpstreamJson } from './json.js'
import { eventsCall, eventsOf, type EventsQuery, type UpstreamCall } from './calls.js'

/** Largest upstream body read; a larger one is a bad response, not a memory problem. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024

/** How the upstream connections are made and bounded (UPSTREAM_* settings). */
export interface UpstreamPoolOptions {
  /** 'auto': HTTP/2 where TLS (ALPN) offers it; 'h2c': cleartext HTTP/2 by prior knowledge; 'off': HTTP/1.1. */
  http2: 'auto' | 'h2c' | 'off'
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
}

export interface UpstreamAnswer { status: number, body: unknown }

/**
 * The Chat API of one channel. Every answer comes back parsed, with the
 * channel token removed wherever the upstream echoed it; every failure is a
 * BridgeError with the protocol's error code.
 */
export class ChatApi {
  readonly channel: Channel
  private readonly base: string
  /** Long polls: multiplexed over HTTP/2 where the upstream speaks it. */
  private readonly polls: Dispatcher
  /** Every other call, apart from the polls so that none waits behind a held poll. */
  private readonly calls: Dispatcher
  private readonly ownsDispatcher: boolean
  private readonly opts: ChatApiOptions

  constructor (channel: Channel, opts: ChatApiOptions) {
    this.channel = channel
    this.base = channel.url.replace(/\/+$/, '') + '/' + channel.token
    this.opts = opts
    this.ownsDispatcher = opts.dispatcher === undefined
    const pools = opts.pools ?? DEFAULT_POOLS
    const origin = new URL(channel.url).origin
    this.polls = opts.dispatcher ?? upstreamPool(origin, pools, pools.streams, pools.pollConnections)
    // undici sends a non-idempotent request (POST) on a connection only when nothing else runs on it, so calls take one stream each.
    this.calls = opts.dispatcher ?? upstreamPool(origin, pools, 1, pools.callConnections)
  }

  /** One request/response call; rejects with a BridgeError. */
  async call (call: UpstreamCall, signal?: AbortSignal): Promise<unknown> {
    const { body } = await this.exchange(call, this.calls, this.opts.requestTimeoutMs, signal)
    // Every Chat API answer is an object; anything else is a proxy or a broken upstream talking.
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new BridgeError(ErrorCode.UPSTREAM_BAD_RESPONSE, `upstream ${call.name} answered with JSON that is not an object`, { call: call.name })
    }
    return body
  }

  /** One /events long poll; resolves with its elements, token removed. */
  async events (q: EventsQuery, signal?: AbortSignal): Promise<Array<Record<string, unknown>>> {
    const { body } = await this.exchange(eventsCall(q), this.polls, this.opts.pollTimeoutMs, signal)
    const events = eventsOf(body)
    if (events === null) throw new BridgeError(ErrorCode.UPSTREAM_BAD_RESPONSE, 'upstream /events answer has no events array', { call: 'events' })
    return events
  }

  async close (): Promise<void> {
    if (this.ownsDispatcher) await Promise.all([this.polls.destroy(), this.calls.destroy()])
  }

  private async exchange (call: UpstreamCall, dispatcher: Dispatcher, timeoutMs: number, signal?: AbortSignal): Promise<UpstreamAnswer> {
    const started = performance.now()
    try {
      const answer = await this.attempt(call, dispatcher, timeoutMs, signal)
      this.opts.observe?.(call.name, String(answer.status), (performance.now() - started) / 1000)
      return answer
    } catch (err) {
      const e = err as BridgeError
      const status = e.details?.status
      this.opts.observe?.(call.name, typeof status === 'number' ? String(status) : e.code, (performance.now() - started) / 1000)
      throw err
    }
  }

  private async attempt (call: UpstreamCall, dispatcher: Dispatcher, timeoutMs: number, signal?: AbortSignal): Promise<UpstreamAnswer> {
    const url = new URL(this.base + call.path)
    for (const [k, v] of Object.entries(call.query ?? {})) url.searchParams.set(k, v)
    let res: Dispatcher.ResponseData
    try {
      res = await request(url, {
        method: call.method,
        dispatcher,
        headers: call.body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
        body: call.body === undefined ? null : JSON.stringify(call.body),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal
      })
    } catch (err) {
      throw this.failure(call, err)
    }
    let text: string
    try {
      text = await res.body.text()
    } catch (err) {
      throw this.failure(call, err)
    }
    const body = this.parse(text)
    if (res.statusCode >= 200 && res.statusCode < 300) {
      if (body === undefined) throw new BridgeError(ErrorCode.UPSTREAM_BAD_RESPONSE, `upstream ${call.name} answered ${res.statusCode} with a body that is not JSON`, { call: call.name, status: res.statusCode })
      return { status: res.statusCode, body }
    }
    throw this.statusError(call, res.statusCode, body, res.headers['retry-after'])
  }

  private parse (text: string): unknown {
    return parseUpstreamJson(text, this.channel.token)
  }

  private statusError (call: UpstreamCall, status: number, body: unknown, retryAfter: string | string[] | undefined): BridgeError {
    const details: Record<string, unknown> = { call: call.name, status }
    let message = `upstream ${call.name} answered ${status}`
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
    maxResponseSize: MAX_RESPONSE_BYTES,
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

/** True for the failures that mean the channel token itself is refused. */
export function isChannelRejected (err: unknown): boolean {
  if (!(err instanceof BridgeError) || err.code !== ErrorCode.UPSTREAM_REJECTED) return false
  const status = err.details?.status
  return status === 401 || status === 403
}
