import { BridgeConnection } from './bridge-connection.js'
import { isRecord } from './frame-reader.js'
import type { BotAnswer, HistoryMessage, HistoryOptions, HistoryResult, Message, MessageStatus } from './frames.js'
import { historyMessages } from './history-messages.js'

/**
 * A client of chatapi-bridge, for browsers and Node: the connection, with a
 * method for each request of the protocol. See docs/protocol.md for the
 * protocol it speaks.
 */
export class BridgeClient extends BridgeConnection {
  /** Sends a message and resolves with the bot's answer. */
  async send (message: Message): Promise<BotAnswer> {
    return await this.request('send', messageFields(message)) as BotAnswer
  }

  /** Sends a message; the answer comes later (by webhook), this resolves with its questionId. */
  async sendAsync (message: Message): Promise<{ questionId: string }> {
    return await this.request('sendAsync', messageFields(message)) as { questionId: string }
  }

  /**
   * The client's history: `chat` is the conversation, oldest first, read
   * from whatever shape the server answered in (see `historyMessages`);
   * `body` is that answer as it came.
   */
  async history (options: HistoryOptions = {}): Promise<HistoryResult> {
    const body = await this.request('history', { ...options })
    const messages = isRecord(body) && Array.isArray(body.messages) ? body.messages as HistoryMessage[] : []
    return { chat: historyMessages(body), messages, body }
  }

  async getState (): Promise<unknown> {
    return await this.request('getState')
  }

  async setState (state: unknown): Promise<unknown> {
    return await this.request('setState', { state })
  }

  async getStatus (questionId: string): Promise<MessageStatus> {
    return await this.request('getStatus', { questionId }) as MessageStatus
  }

  async setStatus (questionId: string, status: string): Promise<MessageStatus> {
    return await this.request('setStatus', { questionId, status }) as MessageStatus
  }

  async setStatuses (statuses: MessageStatus[]): Promise<{ statuses: MessageStatus[] }> {
    return await this.request('setStatuses', { statuses }) as { statuses: MessageStatus[] }
  }

  /** How many bot and agent messages the client has not read. */
  async unreadCount (): Promise<number> {
    const result = await this.request('unreadCount') as { count?: unknown }
    return typeof result.count === 'number' ? result.count : 0
  }
}

function messageFields (message: Message): Record<string, unknown> {
  if (typeof message === 'string') return { query: message }
  const fields: Record<string, unknown> = 'query' in message ? { query: message.query } : { event: message.event }
  if (message.data !== undefined) fields.data = message.data
  return fields
}
