/**
 * The emulator's memory of each client of each channel: its event log, the
 * bot's and agents' messages kept for the history routes, their statuses,
 * and the chat state.
 */
import type { ResponseData } from './bot.js'
import { EventLog, ReadCursors, type UpstreamEvent } from './event-log.js'
import type { ProfileFlags } from './profiles.js'
import type { UpstreamClock } from './timekeeping.js'

/** Statuses of bot messages; NOT_SENT is the documented one, the rest are the emulator's choice. */
export const MESSAGE_STATUSES = ['NOT_SENT', 'SENT', 'DELIVERED', 'READ'] as const
export type MessageStatus = (typeof MESSAGE_STATUSES)[number]

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
  private readonly kept: KeptMessage[] = []

  add (kept: KeptMessage): void {
    this.kept.push(kept)
    if (this.kept.length > HISTORY_CAP) this.kept.splice(0, this.kept.length - HISTORY_CAP)
  }

  /** The most recent `limit` messages within [from, to], oldest first. */
  messages (from: number, to: number, limit: number): HistoryMessage[] {
    return lastOf(this.kept.filter((m) => m.at >= from && m.at <= to), limit).map((m) => m.message)
  }

  /**
   * The most recent `limit` entries within [from, to], oldest first, and how
   * many the span holds. Each entry is placed at its own time, so a request
   * answered late (async) sits before what came in between.
   */
  entries (from: number, to: number, limit: number, statuses: ReadonlyMap<string, MessageStatus>): { totalCount: number, messages: HistoryEntry[] } {
    const timed = this.kept.flatMap((kept) => entriesOf(kept, statuses))
      .filter((e) => e.at >= from && e.at <= to)
      .sort((a, b) => a.at - b.at)
    return { totalCount: timed.length, messages: lastOf(timed, limit).map((e) => e.entry) }
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

/** Everything the upstream keeps about one client of one channel. */
export class ClientRecord {
  readonly log = new EventLog()
  readonly cursors: ReadCursors
  readonly statuses = new Map<string, MessageStatus>()
  readonly history = new MessageHistory()
  state: unknown = {}
  /** Turns the bot has answered; the first one starts a session. */
  turns = 0

  constructor (flags: ProfileFlags) {
    this.cursors = new ReadCursors(flags)
  }

  /** Keeps a bot answer or agent reply in the history, with the status SENT. */
  addMessage (kept: KeptMessage): void {
    this.statuses.set(kept.message.questionId, 'SENT')
    this.history.add(kept)
  }

  /** Bot answers and agent replies the client has not read. */
  unread (): number {
    let count = 0
    for (const status of this.statuses.values()) if (status !== 'READ') count++
    return count
  }
}

export interface StoreOptions {
  /** Called after each append; it wakes only the polls held for that client. */
  onAppend: (token: string, clientId: string) => void
  /** Prints the time of each event. */
  clock: UpstreamClock
  flags: ProfileFlags
}

/**
 * The emulator's memory: one record per (token, clientId). Appending to a log
 * calls `onAppend`, which wakes only the polls held for that client.
 */
export class ChannelStore {
  private readonly clients = new Map<string, ClientRecord>()
  private readonly onAppend: (token: string, clientId: string) => void
  private readonly clock: UpstreamClock
  private readonly flags: ProfileFlags

  constructor (options: StoreOptions) {
    this.onAppend = options.onAppend
    this.clock = options.clock
    this.flags = options.flags
  }

  find (token: string, clientId: string): ClientRecord | undefined {
    return this.clients.get(key(token, clientId))
  }

  client (token: string, clientId: string): ClientRecord {
    const k = key(token, clientId)
    let record = this.clients.get(k)
    if (record === undefined) {
      record = new ClientRecord(this.flags)
      this.clients.set(k, record)
    }
    return record
  }

  /**
   * Appends `{ type, event: { ...fields, timestamp } }` stamped at `at`. The
   * stamp wins over a `timestamp` in `fields`: the log is searched by it.
   */
  append (token: string, clientId: string, at: number, type: string, fields: Record<string, unknown>): UpstreamEvent {
    return this.appendAll(token, clientId, at, [[type, fields]])[0] as UpstreamEvent
  }

  /** Appends several events, then wakes the polls once, so that a poll sees them together. */
  appendAll (token: string, clientId: string, at: number, items: Array<[string, Record<string, unknown>]>): UpstreamEvent[] {
    const log = this.client(token, clientId).log
    const appended = items.map(([type, fields]) => log.append(at, this.eventOf(at, type, fields)).item)
    this.onAppend(token, clientId)
    return appended
  }

  /**
   * An event as this upstream writes its time: an ISO string inside `event`
   * by default; a number ('epoch-times'); on the outer element, null inside
   * ('outer-times'); not at all on a stateUpdate ('untimed-state').
   */
  private eventOf (at: number, type: string, fields: Record<string, unknown>): UpstreamEvent {
    const flags = this.flags
    if (flags['untimed-state'] && type === 'stateUpdate') {
      const event = { ...fields }
      delete event.timestamp
      return { type, event }
    }
    const timestamp = flags['epoch-times'] ? at : this.clock.format(at)
    if (flags['outer-times']) return { type, timestamp, event: { ...fields, timestamp: null } }
    return { type, event: { ...fields, timestamp } }
  }
}

function key (token: string, clientId: string): string {
  return `${token}\u0000${clientId}`
}
