import type { MessageStatus } from './message-status.js'
import type { ResponseData } from './response.js'

/** An element of the default history answer: a bot or agent message with the request it answers. */
export interface HistoryMessage {
  questionId: string
  timestamp: string
  request: unknown
  response: unknown
}

/** Who wrote a kept message; the client's requests are kept with the answer. */
export type Author = 'BOT' | 'OPERATOR'

export interface KeptMessage {
  /** Upstream epoch ms of the message, for the span of a history request. */
  at: number
  author: Author
  message: HistoryMessage & { response: ResponseData }
  /** The client's request it answers, if any: when it came and how that time was printed. */
  asked?: { at: number, timestamp: string }
}

/**
 * An element of the history answer of the 'entry-history' profile, the shape
 * of a sibling history API of the platform: one entry per message. A field
 * that does not apply to an entry is null.
 */
export interface HistoryEntry {
  questionId: string
  textMessage: string | null
  author: Author | 'CLIENT'
  status: MessageStatus | null
  eventData: { event: string, data: unknown } | null
  replies: unknown[] | null
  timestamp: string
}

/** Messages kept per client; older ones are dropped. */
const HISTORY_CAP = 10_000

/** The bot's and agents' messages to one client, in the order they were kept. */
export class MessageHistory {
  readonly #kept: KeptMessage[] = []

  add (kept: KeptMessage): void {
    this.#kept.push(kept)
    if (this.#kept.length > HISTORY_CAP) this.#kept.splice(0, this.#kept.length - HISTORY_CAP)
  }

  /** The most recent `limit` messages within [from, to], oldest first. */
  messages (from: number, to: number, limit: number): HistoryMessage[] {
    return lastOf(this.#kept.filter(m => m.at >= from && m.at <= to), limit).map(m => m.message)
  }

  /**
   * The most recent `limit` entries within [from, to], oldest first, and how
   * many the span holds. Each entry is placed at its own time, so a request
   * answered late (async) sits before what came in between.
   */
  entries (from: number, to: number, limit: number, statuses: ReadonlyMap<string, MessageStatus>): { totalCount: number, messages: HistoryEntry[] } {
    const timed = this.#kept.flatMap(kept => entriesOf(kept, statuses))
      .filter(e => e.at >= from && e.at <= to)
      .sort((a, b) => a.at - b.at)
    return { totalCount: timed.length, messages: lastOf(timed, limit).map(e => e.entry) }
  }
}

function entriesOf (kept: KeptMessage, statuses: ReadonlyMap<string, MessageStatus>): Array<{ at: number, entry: HistoryEntry }> {
  const { questionId, timestamp, response } = kept.message
  const answer: HistoryEntry = {
    questionId,
    textMessage: response.answer,
    author: kept.author,
    status: statuses.get(questionId) ?? null,
    eventData: null,
    replies: response.replies,
    timestamp
  }
  if (kept.asked === undefined) return [{ at: kept.at, entry: answer }]
  // What requestOf() made of the client's input.
  const request = kept.message.request as { query?: string, event?: string, data?: unknown }
  const question: HistoryEntry = {
    questionId,
    textMessage: request.query ?? null,
    author: 'CLIENT',
    status: null,
    eventData: request.event === undefined ? null : { event: request.event, data: request.data ?? null },
    replies: null,
    timestamp: kept.asked.timestamp
  }
  return [{ at: kept.asked.at, entry: question }, { at: kept.at, entry: answer }]
}

function lastOf<T> (items: T[], limit: number): T[] {
  return items.slice(Math.max(0, items.length - limit))
}
