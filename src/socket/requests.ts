import { BridgeError, ErrorCode } from './errors.js'
import type { RequestFrame, ResultError, ResultFrame } from './protocol.js'
import { TtlCache } from '../lib/ttl-cache.js'
import { callFor } from '../upstream/calls.js'
import type { ChatApi } from '../upstream/chat-api.js'
import { isChannelRejected } from '../upstream/upstream-answers.js'
import { clientKey } from '../lib/client-key.js'

export interface RequestContext { channel: string, clientId: string, cid: string }

/**
 * Failures a resend should retry rather than be told again: the upstream did
 * not act on them. A timeout is not one of them: the upstream may have taken
 * the message, and a second try could send it twice.
 */
const TRANSIENT = new Set<string>([ErrorCode.UPSTREAM_UNAVAILABLE, ErrorCode.SHUTTING_DOWN, ErrorCode.RATE_LIMITED])

/**
 * Where results are kept for resends. `once` runs `run` at most once per key
 * while its result is kept: a concurrent or later call with the same key gets
 * the same result. A result that `keep` refuses is not kept, so a resend runs
 * again. The in-process cache is the default; a cluster keeps them in Redis.
 */
export interface ResultCache {
  once: (key: string, run: () => Promise<ResultFrame>, keep: (result: ResultFrame) => boolean) => Promise<ResultFrame>
}

/** Runs the sends of one lane (one client) one at a time, in the order they came. */
export interface SendLanes {
  run: <T>(lane: string, fn: () => Promise<T>) => Promise<T>
}

export interface RequestsOptions {
  apis: Map<string, ChatApi>
  resultCacheMs: number
  /** Most results kept for resends, across all clients. */
  resultCacheMax?: number
  /** Defaults to an in-process cache of `resultCacheMs` and `resultCacheMax`. */
  results?: ResultCache | undefined
  /** Defaults to in-process lanes. */
  lanes?: SendLanes | undefined
  onChannelRejected: (channel: string, reason: string) => void
}

/** Results kept in this process; a pending result is shared by every request that asks meanwhile. */
export class MemoryResultCache implements ResultCache {
  private readonly results: TtlCache<Promise<ResultFrame>>

  constructor (ttlMs: number, max: number) {
    this.results = new TtlCache(ttlMs, max)
  }

  async once (key: string, run: () => Promise<ResultFrame>, keep: (result: ResultFrame) => boolean): Promise<ResultFrame> {
    const known = this.results.get(key)
    if (known !== undefined) return await known
    const pending = run()
    this.results.set(key, pending)
    const result = await pending
    if (!keep(result) && this.results.get(key) === pending) this.results.delete(key)
    return result
  }
}

/** Lanes in this process: each call starts after every earlier call of its lane has settled. */
export class MemoryLanes implements SendLanes {
  private readonly lanes = new Map<string, Promise<unknown>>()

  async run<T> (lane: string, fn: () => Promise<T>): Promise<T> {
    const before = this.lanes.get(lane) ?? Promise.resolve()
    const mine = before.then(fn, fn)
    const tail = mine.catch(() => undefined)
    this.lanes.set(lane, tail)
    void tail.then(() => { if (this.lanes.get(lane) === tail) this.lanes.delete(lane) })
    return await mine
  }
}

/**
 * Turns request frames into upstream calls. Each request gets exactly one
 * result frame; a resent id gets the same result without a second upstream
 * call; `send` and `sendAsync` of one client go upstream one at a time.
 */
export class Requests {
  private readonly o: RequestsOptions
  private readonly results: ResultCache
  private readonly lanes: SendLanes
  /** Sends of one client in this process, in the order they arrived, before any store is asked. */
  private readonly arrivals = new MemoryLanes()
  private closing = false

  constructor (opts: RequestsOptions) {
    this.o = opts
    this.results = opts.results ?? new MemoryResultCache(opts.resultCacheMs, opts.resultCacheMax ?? 200_000)
    this.lanes = opts.lanes ?? new MemoryLanes()
  }

  /** Stops taking new upstream calls; what is in flight still answers. */
  shutdown (): void { this.closing = true }

  /** The `result` frame for a request. */
  async handle (ctx: RequestContext, req: RequestFrame): Promise<ResultFrame> {
    const key = clientKey(ctx.channel, ctx.clientId, req.id)
    const once = async (): Promise<ResultFrame> => await this.results.once(key, async () => await this.run(ctx, req), keepable)
    try {
      // A shared result store answers lookups of different ids in any order: keep the client's own order first.
      return isSend(req) ? await this.arrivals.run(laneOf(ctx), once) : await once()
    } catch (err) {
      // The result store failed (a shared store that is down): nothing went upstream, so a resend may run it.
      return { type: 'result', id: req.id, ok: false, error: errorBody(err) }
    }
  }

  private async run (ctx: RequestContext, req: RequestFrame): Promise<ResultFrame> {
    try {
      if (this.closing) throw new BridgeError(ErrorCode.SHUTTING_DOWN, 'the bridge is shutting down')
      const api = this.o.apis.get(ctx.channel)
      if (api === undefined) throw new BridgeError(ErrorCode.BAD_REQUEST, `unknown channel "${ctx.channel}"`)
      const call = callFor(req, ctx.clientId, ctx.cid)
      const exec = async (): Promise<unknown> => await api.call(call)
      const result = isSend(req)
        ? await this.lanes.run(laneOf(ctx), exec)
        : await exec()
      return { type: 'result', id: req.id, ok: true, result }
    } catch (err) {
      // Let the result reach the socket first; then the channel's sockets close with 4502.
      if (isChannelRejected(err)) setImmediate(() => { this.o.onChannelRejected(ctx.channel, (err as Error).message) })
      return { type: 'result', id: req.id, ok: false, error: errorBody(err) }
    }
  }

}

function isSend (req: RequestFrame): boolean {
  return req.type === 'send' || req.type === 'sendAsync'
}

function laneOf (ctx: RequestContext): string {
  return clientKey(ctx.channel, ctx.clientId)
}

/** A result worth keeping for resends: every success and every failure that a retry would not change. */
function keepable (result: ResultFrame): boolean {
  if (result.ok) return true
  // "Too many requests" is no answer to the request: a resend after Retry-After must reach the upstream.
  return !TRANSIENT.has(result.error.code) && result.error.status !== 429
}

export function errorBody (err: unknown): ResultError {
  if (err instanceof BridgeError) {
    const body: ResultError = { code: err.code, message: err.message }
    if (typeof err.details?.status === 'number') body.status = err.details.status
    if (err.details?.upstreamError !== undefined) body.upstreamError = err.details.upstreamError
    // A 429's Retry-After reaches the client, which is the one to try again (a send is not retried for it).
    if (typeof err.details?.retryAfterMs === 'number') body.retryAfterMs = err.details.retryAfterMs
    return body
  }
  return { code: ErrorCode.UPSTREAM_UNAVAILABLE, message: 'the request failed inside the bridge' }
}
