import type { UpstreamClock } from './clock.js'
import { EventLog } from './event-log.js'
import { ReadCursors } from './events-query.js'
import { MessageHistory, type KeptMessage } from './history.js'
import type { MessageStatus } from './message-status.js'
import type { ProfileFlags } from './settings.js'
import type { UpstreamEvent } from './types.js'

export type { HistoryMessage } from './history.js'

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
  readonly #clients = new Map<string, ClientRecord>()
  readonly #onAppend: (token: string, clientId: string) => void
  readonly #clock: UpstreamClock
  readonly #flags: ProfileFlags

  constructor (options: StoreOptions) {
    this.#onAppend = options.onAppend
    this.#clock = options.clock
    this.#flags = options.flags
  }

  find (token: string, clientId: string): ClientRecord | undefined {
    return this.#clients.get(key(token, clientId))
  }

  client (token: string, clientId: string): ClientRecord {
    const k = key(token, clientId)
    let record = this.#clients.get(k)
    if (record === undefined) {
      record = new ClientRecord(this.#flags)
      this.#clients.set(k, record)
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
    const appended = items.map(([type, fields]) => log.append(at, this.#eventOf(at, type, fields)).item)
    this.#onAppend(token, clientId)
    return appended
  }

  /**
   * An event as this upstream writes its time: an ISO string inside `event`
   * by default; a number ('epoch-times'); on the outer element, null inside
   * ('outer-times'); not at all on a stateUpdate ('untimed-state').
   */
  #eventOf (at: number, type: string, fields: Record<string, unknown>): UpstreamEvent {
    const flags = this.#flags
    if (flags['untimed-state'] && type === 'stateUpdate') {
      const event = { ...fields }
      delete event.timestamp
      return { type, event }
    }
    const timestamp = flags['epoch-times'] ? at : this.#clock.format(at)
    if (flags['outer-times']) return { type, timestamp, event: { ...fields, timestamp: null } }
    return { type, event: { ...fields, timestamp } }
  }
}

function key (token: string, clientId: string): string {
  return `${token}\u0000${clientId}`
}
