import { BridgeError, ErrorCode } from './errors.js'
import type { RequestFrame, ResultError, ResultFrame } from './protocol.js'
import { ByteCache, largestEntry, type ByteCacheStats } from '../lib/byte-cache.js'
import { callFor } from '../upstream/calls.js'
import type { ChatApi } from '../upstream/chat-api.js'
import { notDispatched, wasNotDispatched } from '../upstream/call-queue.js'
import { clientKey } from '../lib/client-key.js'

export interface RequestContext {
  channel: string
  clientId: string
  cid: string
  /** True once the socket that sent the request has closed: what has not gone upstream by then never does. */
  gone?: () => boolean
}

/**
 * Failures a resend should retry rather than be told again: the upstream did
 * not act on them. A timeout is not one of them: the upstream may have taken
 * the message, and a second try could send it twice.
 */
const TRANSIENT = new Set<string>([ErrorCode.UPSTREAM_UNAVAILABLE, ErrorCode.SHUTTING_DOWN, ErrorCode.RATE_LIMITED])

/**
 * Failed results of requests that never reached the upstream (their time ran
 * out while they waited): whatever their code, a resend must run them.
 */
const UNSENT = new WeakSet<ResultFrame>()

/** Which request a result answers, and whose share of the cache it takes. */
export interface ResultKey {
  /** clientKey(channel, clientId, id): unique per request. */
  request: string
  /** clientKey(channel, clientId). */
  client: string
}

/** A settled result worth keeping: its JSON text and that text's size in bytes. */
export interface Kept { json: string, bytes: number }

/**
 * Where results are kept for resends. `once` runs `run` at most once per key
 * while its result is kept: a concurrent or later call with the same key gets
 * the same result. `keep` says whether a settled result is kept, and what it
 * weighs; one it refuses is not kept, so a resend runs again. The in-process
 * cache is the default; a cluster keeps them in Redis.
 */
export interface ResultCache {
  once: (key: ResultKey, run: () => Promise<ResultFrame>, keep: (result: ResultFrame) => Kept | undefined) => Promise<ResultFrame>
}

/**
 * Runs the sends of one lane (one client) one at a time, in the order they
 * came. A send still waiting for its turn at `deadline` (epoch ms) fails
 * with notDispatched and never runs.
 */
export interface SendLanes {
  run: <T>(lane: string, fn: () => Promise<T>, deadline?: number) => Promise<T>
}

export interface RequestsOptions {
  apis: Map<string, ChatApi>
  resultCacheMs: number
  /** Most results kept for resends, across all clients. */
  resultCacheMax?: number
  /** Bytes of results kept in this process at most (RESULT_CACHE_BYTES). */
  resultCacheBytes?: number
  /** Bytes of results kept for one client at most (RESULT_CACHE_CLIENT_BYTES); a larger result is not kept at all. */
  resultClientBytes?: number
  /** Sends of one client waiting for their turn at most (SEND_QUEUE_PER_CLIENT). */
  sendQueue?: number
  /** The whole life of a request from its arrival: waiting for its turn and its upstream call (REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number
  /** Defaults to an in-process cache bounded by `resultCacheMs`, `resultCacheMax` and the byte bounds. */
  results?: ResultCache | undefined
  /** Defaults to in-process lanes. */
  lanes?: SendLanes | undefined
}

const DEFAULTS = {
  resultCacheMax: 200_000,
  resultCacheBytes: 64 * 1_048_576,
  resultClientBytes: 1_048_576,
  sendQueue: 32,
  requestTimeoutMs: 15_000
}

/**
 * Results kept in this process, bounded in bytes for each client and in
 * all; a pending result is shared by every request that asks meanwhile, and
 * weighs nothing until it settles.
 */
export class MemoryResultCache implements ResultCache {
  private readonly results: ByteCache<Promise<ResultFrame>>

  constructor (ttlMs: number, max: number, bytes = DEFAULTS.resultCacheBytes, clientBytes = DEFAULTS.resultClientBytes) {
    this.results = new ByteCache({ ttlMs, maxEntries: max, maxBytes: bytes, groupBytes: clientBytes })
  }

  async once (key: ResultKey, run: () => Promise<ResultFrame>, keep: (result: ResultFrame) => Kept | undefined): Promise<ResultFrame> {
    const known = this.results.get(key.request)
    if (known !== undefined) return await known
    const pending = run()
    this.results.hold(key.request, key.client, pending)
    let result: ResultFrame
    try {
      result = await pending
    } catch (err) {
      this.results.settle(key.request, pending, undefined)
      throw err
    }
    this.results.settle(key.request, pending, keep(result)?.bytes)
    return result
  }

  stats (): ByteCacheStats { return this.results.stats() }

  /** Bytes kept for one client (clientKey of channel and clientId). */
  clientBytes (client: string): number { return this.results.groupBytes(client) }
}

interface LaneWaiter { start: () => void, gone: boolean, timer: NodeJS.Timeout | undefined }

/** One lane: whether a call runs, and the calls waiting behind it, oldest first. */
class Lane {
  busy = false
  live = 0
  readonly waiting: LaneWaiter[] = []

  /** The oldest waiter still there. */
  shift (): LaneWaiter | undefined {
    for (let w = this.waiting.shift(); w !== undefined; w = this.waiting.shift()) {
      if (w.gone) continue
      this.live--
      return w
    }
    return undefined
  }
}

/**
 * Lanes in this process: each call starts after every earlier call of its
 * lane has settled. At most `maxWaiting` calls wait in one lane; one more
 * fails at once with RATE_LIMITED, so a client cannot pile up work that
 * outlives it.
 */
export class MemoryLanes implements SendLanes {
  private readonly lanes = new Map<string, Lane>()
  private readonly maxWaiting: number

  constructor (maxWaiting = Infinity) {
    this.maxWaiting = maxWaiting
  }

  async run<T> (name: string, fn: () => Promise<T>, deadline?: number): Promise<T> {
    let lane = this.lanes.get(name)
    if (lane === undefined) {
      lane = new Lane()
      this.lanes.set(name, lane)
    }
    if (lane.busy) await this.wait(lane, deadline)
    lane.busy = true
    try {
      return await fn()
    } finally {
      this.next(name, lane)
    }
  }

  /** Waiting sends of one lane now (for tests and metrics). */
  waiting (name: string): number { return this.lanes.get(name)?.live ?? 0 }

  private async wait (lane: Lane, deadline: number | undefined): Promise<void> {
    if (lane.live >= this.maxWaiting) {
      throw new BridgeError(ErrorCode.RATE_LIMITED, `${this.maxWaiting} sends of this client are already waiting for their turn; send again once they are answered`)
    }
    if (deadline !== undefined && deadline <= Date.now()) throw notDispatched('behind the client\'s other sends')
    await new Promise<void>((resolve, reject) => {
      const w: LaneWaiter = { start: () => { clearTimeout(w.timer); resolve() }, gone: false, timer: undefined }
      lane.waiting.push(w)
      lane.live++
      if (deadline === undefined) return
      w.timer = setTimeout(() => {
        w.gone = true
        lane.live--
        reject(notDispatched('behind the client\'s other sends'))
      }, deadline - Date.now())
    })
  }

  /** Hands the lane to its next waiter, or drops it when none is left. */
  private next (name: string, lane: Lane): void {
    const w = lane.shift()
    if (w !== undefined) {
      w.start()
      return
    }
    lane.busy = false
    if (this.lanes.get(name) === lane) this.lanes.delete(name)
  }
}

/**
 * Turns request frames into upstream calls. Each request gets exactly one
 * result frame; a resent id gets the same result without a second upstream
 * call; `send` and `sendAsync` of one client go upstream one at a time. A
 * request lives REQUEST_TIMEOUT_MS from its arrival at most, its waits
 * included, so a client that leaves leaves no more than that behind.
 */
export class Requests {
  private readonly o: RequestsOptions
  private readonly results: ResultCache
  private readonly lanes: SendLanes
  /** Sends of one client in this process, in the order they arrived, before any store is asked. */
  private readonly arrivals: MemoryLanes
  private readonly timeoutMs: number
  /** The largest result kept: none may take more than one client's share. */
  private readonly largest: number
  private closing = false

  constructor (opts: RequestsOptions) {
    this.o = opts
    const bytes = opts.resultCacheBytes ?? DEFAULTS.resultCacheBytes
    const clientBytes = opts.resultClientBytes ?? DEFAULTS.resultClientBytes
    const sendQueue = opts.sendQueue ?? DEFAULTS.sendQueue
    this.timeoutMs = opts.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs
    this.largest = largestEntry({ maxBytes: bytes, groupBytes: clientBytes })
    this.results = opts.results ?? new MemoryResultCache(opts.resultCacheMs, opts.resultCacheMax ?? DEFAULTS.resultCacheMax, bytes, clientBytes)
    this.lanes = opts.lanes ?? new MemoryLanes(sendQueue)
    this.arrivals = new MemoryLanes(sendQueue)
  }

  /** Stops taking new upstream calls; what is in flight still answers. */
  shutdown (): void { this.closing = true }

  /** The `result` frame for a request. */
  async handle (ctx: RequestContext, req: RequestFrame): Promise<ResultFrame> {
    const deadline = Date.now() + this.timeoutMs
    const key = { request: clientKey(ctx.channel, ctx.clientId, req.id), client: laneOf(ctx) }
    const once = async (): Promise<ResultFrame> => await this.results.once(key, async () => await this.run(ctx, req, deadline), this.keep)
    try {
      // A shared result store answers lookups of different ids in any order: keep the client's own order first.
      return isSend(req) ? await this.arrivals.run(key.client, once, deadline) : await once()
    } catch (err) {
      // A full or expired send queue, or a result store that failed (a shared store that is down):
      // nothing went upstream, so a resend may run it.
      return failed(req.id, err)
    }
  }

  private async run (ctx: RequestContext, req: RequestFrame, deadline: number): Promise<ResultFrame> {
    try {
      if (this.closing) throw new BridgeError(ErrorCode.SHUTTING_DOWN, 'the bridge is shutting down')
      const api = this.o.apis.get(ctx.channel)
      if (api === undefined) throw new BridgeError(ErrorCode.BAD_REQUEST, `unknown channel "${ctx.channel}"`)
      const call = callFor(req, ctx.clientId, ctx.cid)
      const client = laneOf(ctx)
      const exec = async (): Promise<unknown> => await api.call(call, { client, deadline, abandoned: ctx.gone })
      const result = isSend(req)
        ? await this.lanes.run(client, exec, deadline)
        : await exec()
      return { type: 'result', id: req.id, ok: true, result }
    } catch (err) {
      // A 401 or 403 here is this request's alone (an upstream rule may refuse one message):
      // a refused channel is known by its own polls, never by one client's request.
      return failed(req.id, err)
    }
  }

  /** What a result weighs, when it is worth keeping and small enough: the one rule for every result store. */
  private readonly keep = (result: ResultFrame): Kept | undefined => {
    if (!keepable(result)) return undefined
    const json = JSON.stringify(result)
    const bytes = Buffer.byteLength(json)
    return bytes <= this.largest ? { json, bytes } : undefined
  }
}

function isSend (req: RequestFrame): boolean {
  return req.type === 'send' || req.type === 'sendAsync'
}

function laneOf (ctx: RequestContext): string {
  return clientKey(ctx.channel, ctx.clientId)
}

function failed (id: string, err: unknown): ResultFrame {
  const frame: ResultFrame = { type: 'result', id, ok: false, error: errorBody(err) }
  if (wasNotDispatched(err)) UNSENT.add(frame)
  return frame
}

/** A result worth keeping for resends: every success and every failure that a retry would not change. */
function keepable (result: ResultFrame): boolean {
  if (result.ok) return true
  if (UNSENT.has(result)) return false
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
