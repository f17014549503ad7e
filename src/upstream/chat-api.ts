import type { Dispatcher } from 'undici'
import { BridgeError } from '../socket/errors.js'
import type { Channel } from '../config.js'
import { eventsCall, type EventsQuery, type UpstreamCall } from './calls.js'
import { ChannelTraits } from './traits.js'
import { tokenPath } from './json.js'
import { DEFAULT_POOLS, callPool, pollPool, type UpstreamPoolOptions } from './upstream-pool.js'
import type { BodyReader } from './body-reader.js'
import { PollHandler } from './poll-handler.js'
import { CallHandler } from './call-handler.js'
import type { PollDispatcher } from './h2-polls.js'
import { UpstreamAnswers, eventsOrError, objectOrError, type CallObserver } from './upstream-answers.js'
import type { PollCall, PollQuery, PollSink, PollUpstream } from './poll-upstream.js'
import { CallQueue, abandoned } from './call-queue.js'

export interface ChatApiOptions {
  requestTimeoutMs: number
  pollTimeoutMs: number
  /** Calls one client has in flight at most: its share of the channel's call connections. */
  callsPerClient: number
  pools?: UpstreamPoolOptions
  /** One dispatcher for every call, instead of the pools (tests). */
  dispatcher?: Dispatcher
  /** Told of every finished call: its name, its outcome (HTTP status or error code) and its duration. */
  observe?: CallObserver
  /** What is learned of this upstream; a quiet one of its own by default. */
  traits?: ChannelTraits
}

/** Whose call it is and how long it may take, for ChatApi.call. */
export interface CallOptions {
  /** The client whose share of the connections the call takes (clientKey of channel and clientId); the bridge's own by default. */
  client?: string
  /** When the request's time runs out (epoch ms), counted from its arrival; requestTimeoutMs from now by default. */
  deadline?: number
  /** True once nobody waits for the answer (the socket that asked closed): a call not sent yet is then not sent. */
  abandoned?: () => boolean
}

const ACCEPT_JSON = { accept: 'application/json' }
const SEND_JSON = { accept: 'application/json', 'content-type': 'application/json' }

/**
 * The Chat API of one channel. Every answer comes back parsed, with the
 * channel token removed wherever the upstream echoed it; every failure is a
 * BridgeError with the protocol's error code.
 */
export class ChatApi implements PollUpstream {
  readonly channel: Channel
  readonly traits: ChannelTraits
  /** The origin (no token in it) and the path prefix of every call, for undici's dispatch. */
  readonly origin: string
  private readonly basePath: string
  /** Long polls: multiplexed over HTTP/2 where the upstream speaks it. */
  private readonly polls: PollDispatcher
  /** Every other call, apart from the polls so that none waits behind a held poll. */
  private readonly calls: Dispatcher
  /** Who may use `calls` next: fair between clients, never more calls than it has connections. */
  private readonly queue: CallQueue
  private readonly ownsDispatcher: boolean
  private readonly answers: UpstreamAnswers
  private readonly opts: ChatApiOptions

  constructor (channel: Channel, opts: ChatApiOptions) {
    this.channel = channel
    this.traits = opts.traits ?? new ChannelTraits()
    this.answers = new UpstreamAnswers(channel.token, this.traits, opts.observe)
    this.opts = opts
    this.ownsDispatcher = opts.dispatcher === undefined
    const url = new URL(channel.url.replace(/\/+$/, '') + '/' + tokenPath(channel.token))
    this.origin = url.origin
    this.basePath = url.pathname.replace(/\/+$/, '')
    const pools = opts.pools ?? DEFAULT_POOLS
    this.polls = opts.dispatcher ?? pollPool(this.origin, pools)
    this.calls = opts.dispatcher ?? callPool(this.origin, pools)
    this.queue = new CallQueue(pools.callConnections, opts.callsPerClient)
  }

  /**
   * One request/response call, once the client's turn for a connection has
   * come; rejects with a BridgeError. A call whose deadline passes while it
   * waits is never sent (see notDispatched); one that is sent gets the time
   * left until the deadline.
   */
  async call (call: UpstreamCall, o: CallOptions = {}): Promise<unknown> {
    const deadline = o.deadline ?? Date.now() + this.opts.requestTimeoutMs
    const release = await this.queue.take(o.client ?? '', deadline)
    try {
      if (o.abandoned?.() === true) throw abandoned()
      const body = objectOrError(call, await this.exchange(call, this.calls, Math.max(1, deadline - Date.now())))
      if (body instanceof BridgeError) throw body
      return body
    } finally {
      release()
    }
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
    const h = new PollHandler(this.answers, sink)
    this.dispatch(this.polls, 'GET', this.basePath + eventsCall({ clientId: q.clientId, cid: q.cid, all: q.all, ts }).path, null, this.opts.pollTimeoutMs, h)
    return h
  }

  async close (): Promise<void> {
    this.queue.close()
    if (this.ownsDispatcher) await Promise.all([this.polls.destroy(), this.calls.destroy()])
  }

  private async exchange (call: UpstreamCall, dispatcher: PollDispatcher, timeoutMs: number): Promise<unknown> {
    let path = this.basePath + call.path
    const query = call.query === undefined ? '' : new URLSearchParams(call.query).toString()
    if (query !== '') path += '?' + query
    return await new Promise((resolve, reject) => {
      const h = new CallHandler(this.answers, call, resolve, reject)
      h.expireAfter(timeoutMs)
      // undici's own timeouts stay as a backstop, a little later than the handler's own.
      this.dispatch(dispatcher, call.method, path, call.body === undefined ? null : JSON.stringify(call.body), timeoutMs + 1000, h)
    })
  }

  private dispatch (dispatcher: PollDispatcher, method: 'GET' | 'POST', path: string, body: string | null, timeoutMs: number, h: BodyReader): void {
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
}
