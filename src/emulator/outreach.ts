import { randomUUID } from 'node:crypto'
import { text } from './bot.js'
import type { UpstreamClock } from './clock.js'
import type { Author } from './history.js'
import { chatResponse, type ChatResponse } from './response.js'
import type { ChannelStore } from './store.js'
import type { TimerSet } from './timer-set.js'
import type { UpstreamEvent } from './types.js'
import type { Webhook } from './webhook.js'

export interface OutreachDeps {
  store: ChannelStore
  clock: UpstreamClock
  webhook: Webhook
  timers: TimerSet
  agentDelayMs: number
}

/**
 * Messages a client gets without asking in the same breath: an agent's reply,
 * a text campaign, the bot speaking up when its timeout expires. All of them
 * reach the webhook; only agent replies also go to /events.
 */
export class Outreach {
  readonly #deps: OutreachDeps
  /** The pending bot timeout of each client; a new client message cancels it. */
  readonly #timeouts = new Map<string, NodeJS.Timeout | undefined>()

  constructor (deps: OutreachDeps) {
    this.#deps = deps
  }

  agentReply (token: string, clientId: string, message: string): UpstreamEvent {
    const { store, clock, webhook } = this.#deps
    const at = clock.now()
    const questionId = randomUUID()
    const replies = [text(message, '/agent')]
    const item = store.append(token, clientId, at, 'agentResponse', { questionId, clientId, text: message, data: { replies }, token })
    const response = chatResponse({ token, clientId, questionId, timestamp: clock.format(at), nlpClass: '/agent', confidence: 1, replies })
    webhook.post([this.#keep(at, 'OPERATOR', response)])
    return item
  }

  campaign (token: string, clientIds: string[], message: string): void {
    const { clock, webhook } = this.#deps
    const timestamp = clock.format(clock.now())
    webhook.post(clientIds.map(clientId => chatResponse({
      token, clientId, questionId: randomUUID(), timestamp, nlpClass: '/campaign', confidence: 1, replies: [text(message, '/campaign')]
    })))
  }

  /** The simulated agent answers the hand-over after agentDelayMs. */
  scheduleAgent (token: string, clientId: string, firstMessage: string): void {
    this.#deps.timers.after(this.#deps.agentDelayMs, () => {
      this.agentReply(token, clientId, `Hi, this is Alex, a live agent. You wrote: "${firstMessage}". How can I help?`)
    })
  }

  /** Arms the bot's timeout: unless the client writes within `seconds`, the bot speaks to the webhook. */
  armTimeout (token: string, clientId: string, seconds: number, targetState: string): void {
    this.clientSpoke(token, clientId)
    const key = `${token}\u0000${clientId}`
    this.#timeouts.set(key, this.#deps.timers.after(seconds * 1000, () => {
      this.#timeouts.delete(key)
      const at = this.#deps.clock.now()
      const replies = [text('Are you still there?', targetState)]
      const timestamp = this.#deps.clock.format(at)
      const response = chatResponse({ token, clientId, questionId: randomUUID(), timestamp, nlpClass: targetState, confidence: 1, replies })
      this.#deps.webhook.post([this.#keep(at, 'BOT', response)])
    }))
  }

  clientSpoke (token: string, clientId: string): void {
    const key = `${token}\u0000${clientId}`
    if (!this.#timeouts.has(key)) return
    this.#deps.timers.cancel(this.#timeouts.get(key))
    this.#timeouts.delete(key)
  }

  /** Bot and agent messages go to the history, unread until the client says otherwise. */
  #keep (at: number, author: Author, response: ChatResponse): ChatResponse {
    const { questionId, timestamp, data } = response
    this.#deps.store.client(response.token, response.clientId)
      .addMessage({ at, author, message: { questionId, timestamp, request: null, response: data } })
    return response
  }
}
