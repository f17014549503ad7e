import { errors as undiciErrors } from 'undici'
import { BridgeError, ErrorCode } from '../socket/errors.js'
import { maskToken, parseUpstreamJson } from './json.js'
import { eventsOf, type UpstreamCall } from './calls.js'
import type { ChannelTraits } from './traits.js'
import { MAX_RESPONSE_BYTES } from './body-reader.js'

/** Told of every finished call: its name, its outcome (HTTP status or error code) and its duration. */
export type CallObserver = (call: string, outcome: string, seconds: number) => void

/**
 * What one channel's upstream answers mean in the Chat API: a body parsed
 * with the channel token removed, or the BridgeError, with the protocol's
 * error code, of a status, of a body that is not JSON, or of an exchange
 * that failed. Every finished exchange is observed and timed here.
 */
export class UpstreamAnswers {
  private readonly token: string
  private readonly traits: ChannelTraits
  private readonly observe: CallObserver | undefined

  constructor (token: string, traits: ChannelTraits, observe: CallObserver | undefined) {
    this.token = token
    this.traits = traits
    this.observe = observe
  }

  /**
   * What a finished exchange amounts to: its parsed body (token removed), or
   * the BridgeError of its status or of a body that is not JSON. `date` is
   * the answer's Date header: the upstream's clock, for where new
   * connections start.
   */
  answerOf (call: UpstreamCall, status: number, text: string, retryAfter: string | undefined, date: string | undefined, started: number): unknown {
    this.traits.date(date, Date.now())
    const ms = performance.now() - started
    this.observe?.(call.name, String(status), ms / 1000)
    this.traits.roundTrip(ms)
    // A long poll that expires may be answered 408 rather than an empty 200: it is the same answer.
    if (status === 408 && call.name === 'events') return { events: [] }
    const body = parseUpstreamJson(text, this.token)
    if (status < 200 || status >= 300) return this.statusError(call, status, body, retryAfter, text)
    if (body === undefined) return new BridgeError(ErrorCode.UPSTREAM_BAD_RESPONSE, `upstream ${call.name} answered ${status} with a body that is not JSON`, { call: call.name, status })
    return body
  }

  /** The BridgeError of an exchange that failed before its answer was complete. */
  failureOf (call: UpstreamCall, err: unknown, started: number): BridgeError {
    const e = this.failure(call, err)
    this.observe?.(call.name, e.code, (performance.now() - started) / 1000)
    return e
  }

  private statusError (call: UpstreamCall, status: number, body: unknown, retryAfter: string | undefined, text: string): BridgeError {
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
    return new BridgeError(ErrorCode.UPSTREAM_UNAVAILABLE, `upstream ${call.name} failed: ${maskToken(why, this.token)}`, details)
  }
}

/** The elements of an /events answer, or the error of an answer of the wrong shape. */
export function eventsOrError (body: unknown): Array<Record<string, unknown>> | BridgeError {
  return eventsOf(body) ?? new BridgeError(ErrorCode.UPSTREAM_BAD_RESPONSE, 'upstream /events answer has no events array', { call: 'events' })
}

/**
 * The body of any other call, or the error of one of the wrong shape: every
 * Chat API answer is an object (a history may be a bare list); anything else
 * is a proxy or a broken upstream talking.
 */
export function objectOrError (call: UpstreamCall, body: unknown): object | BridgeError {
  if (typeof body !== 'object' || body === null || (Array.isArray(body) && call.name !== 'history')) {
    return new BridgeError(ErrorCode.UPSTREAM_BAD_RESPONSE, `upstream ${call.name} answered with JSON that is not an object`, { call: call.name })
  }
  return body
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
