import { formatTimestamp } from './clock.js'
import { EventLog } from './event-log.js'
import { ReadCursors } from './events-query.js'
import type { MessageStatus } from './message-status.js'
import type { UpstreamEvent } from './types.js'

export interface HistoryMessage {
  questionId: string
  timestamp: string
  request: unknown
  response: unknown
}

interface StoredMessage {
  /** Upstream epoch ms, for from/to. */
  at: number
  message: HistoryMessage
}

/** History kept per client; older messages are dropped. */
const HISTORY_CAP = 10_000

/** Everything the upstream keeps about one client of one channel. */
export class ClientRecord {
  readonly log = new EventLog()
  readonly cursors = new ReadCursors()
  readonly statuses = new Map<string, MessageStatus>()
  readonly #history: StoredMessage[] = []
  state: unknown = {}
  /** Turns the bot has answered; the first one starts a session. */
  turns = 0

  /** Keeps a bot answer or agent reply in the history, with the status SENT. */
  addMessage (at: number, message: HistoryMessage): void {
    this.statuses.set(message.questionId, 'SENT')
    this.#history.push({ at, message })
    if (this.#history.length > HISTORY_CAP) this.#history.splice(0, this.#history.length - HISTORY_CAP)
  }

  /** The most recent `limit` messages within [from, to], oldest first. */
  history (from: number, to: number, limit: number): HistoryMessage[] {
    const span = this.#history.filter(m => m.at >= from && m.at <= to)
    return span.slice(Math.max(0, span.length - limit)).map(m => m.message)
  }

  /** Bot answers and agent replies the client has not read. */
  unread (): number {
    let count = 0
    for (const status of this.statuses.values()) if (status !== 'READ') count++
    return count
  }
}

/**
 * The emulator's memory: one record per (token, clientId). Appending to a log
 * calls `onAppend`, which wakes only the polls held for that client.
 */
export class ChannelStore {
  readonly #clients = new Map<string, ClientRecord>()
  readonly #onAppend: (token: string, clientId: string) => void

  constructor (onAppend: (token: string, clientId: string) => void) {
    this.#onAppend = onAppend
  }

  find (token: string, clientId: string): ClientRecord | undefined {
    return this.#clients.get(key(token, clientId))
  }

  client (token: string, clientId: string): ClientRecord {
    const k = key(token, clientId)
    let record = this.#clients.get(k)
    if (record === undefined) {
      record = new ClientRecord()
      this.#clients.set(k, record)
    }
    return record
  }

  /**
   * Appends `{ type, event: { ...fields, timestamp } }` stamped at `at`. The
   * stamp wins over a `timestamp` in `fields`: the log must stay sorted by it.
   */
  append (token: string, clientId: string, at: number, type: string, fields: Record<string, unknown>): UpstreamEvent {
    return this.appendAll(token, clientId, at, [[type, fields]])[0] as UpstreamEvent
  }

  /** Appends several events, then wakes the polls once, so that a poll sees them together. */
  appendAll (token: string, clientId: string, at: number, items: Array<[string, Record<string, unknown>]>): UpstreamEvent[] {
    const log = this.client(token, clientId).log
    const timestamp = formatTimestamp(at)
    const appended = items.map(([type, fields]) => log.append(at, { type, event: { ...fields, timestamp } }).item)
    this.#onAppend(token, clientId)
    return appended
  }
}

function key (token: string, clientId: string): string {
  return `${token}\u0000${clientId}`
}
