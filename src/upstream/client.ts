import { Agent, request, errors as undiciErrors, type Dispatcher } from 'undici'
import { BridgeError, ErrorCode } from '../errors.js'
import type { Channel } from '../config.js'
import { maskToken, parseUpstreamJson } from './json.js'
import { eventsCall, eventsOf, type EventsQuery, type UpstreamCall } from './calls.js'

/** Largest upstream body read; a larger one is a bad response, not a memory problem. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024

export interface ChatApiOptions {
  requestTimeoutMs: number
  pollTimeoutMs: number
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
  private readonly dispatcher: Dispatcher
  private readonly ownsDispatcher: boolean
  private readonly opts: ChatApiOptions

  constructor (channel: Channel, opts: ChatApiOptions) {
    this.channel = channel
    this.base = channel.url.replace(/\/+$/, '') + '/' + channel.token
    this.opts = opts
    this.ownsDispatcher = opts.dispatcher === undefined
    this.dispatcher = opts.dispatcher ?? new Agent({ keepAliveTimeout: 30_000, maxResponseSize: MAX_RESPONSE_BYTES })
  }

  /** One request/response call; rejects with a BridgeError. */
  async call (call: UpstreamCall, signal?: AbortSignal): Promise<unknown> {
    const { body } = await this.exchange(call, this.opts.requestTimeoutMs, signal)
    // Every Chat API answer is an object; anything else is a proxy or a broken upstream talking.
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new BridgeError(ErrorCode.UPSTREAM_BAD_RESPONSE, `upstream ${call.name} answered with JSON that is not an object`, { call: call.name })
    }
    return body
  }

  /** One /events long poll; resolves with its elements, token removed. */
  async events (q: EventsQuery, signal?: AbortSignal): Promise<Array<Record<string, unknown>>> {
    const { body } = await this.exchange(eventsCall(q), this.opts.pollTimeoutMs, signal)
    const events = eventsOf(body)
    if (events === null) throw new BridgeError(ErrorCode.UPSTREAM_BAD_RESPONSE, 'upstream /events answer has no events array', { call: 'events' })
    return events
  }

  async close (): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.destroy()
  }

  private async exchange (call: UpstreamCall, timeoutMs: number, signal?: AbortSignal): Promise<UpstreamAnswer> {
    const started = performance.now()
    try {
      const answer = await this.attempt(call, timeoutMs, signal)
      this.opts.observe?.(call.name, String(answer.status), (performance.now() - started) / 1000)
      return answer
    } catch (err) {
      const e = err as BridgeError
      const status = e.details?.status
      this.opts.observe?.(call.name, typeof status === 'number' ? String(status) : e.code, (performance.now() - started) / 1000)
      throw err
    }
  }

  private async attempt (call: UpstreamCall, timeoutMs: number, signal?: AbortSignal): Promise<UpstreamAnswer> {
    const url = new URL(this.base + call.path)
    for (const [k, v] of Object.entries(call.query ?? {})) url.searchParams.set(k, v)
    let res: Dispatcher.ResponseData
    try {
      res = await request(url, {
        method: call.method,
        dispatcher: this.dispatcher,
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
