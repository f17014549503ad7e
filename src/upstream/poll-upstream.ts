import type { BridgeError } from '../socket/errors.js'

/**
 * What a poller needs of an upstream: long polls started with callbacks,
 * not promises, since an idle client holds one for the whole hold time. The
 * ChatApi is one; tests script their own.
 */
export interface PollUpstream {
  poll: (q: PollQuery, ts: number | undefined, sink: PollSink) => PollCall
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
