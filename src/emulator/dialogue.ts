import { randomUUID } from 'node:crypto'
import { botTurn } from './bot.js'
import type { UpstreamClock } from './clock.js'
import type { Outreach } from './outreach.js'
import { chatResponse, type ChatResponse } from './response.js'
import type { ChannelStore } from './store.js'
import type { TimerSet } from './timer-set.js'
import type { Webhook } from './webhook.js'

/** A client request, from a POST body or a GET query alike. */
export interface TurnInput {
  clientId: string
  query?: string | undefined
  event?: string | undefined
  data?: Record<string, unknown> | undefined
  cid?: string | undefined
}

export interface DialogueDeps {
  store: ChannelStore
  clock: UpstreamClock
  webhook: Webhook
  timers: TimerSet
  outreach: Outreach
  asyncDelayMs: number
}

/**
 * A client's turns with the bot. A sync turn puts the request and the answer
 * in the client's log, so that the client's other pages see both; an async
 * turn puts only the request there, and its answer goes to the webhook.
 */
export class Dialogue {
  readonly #deps: DialogueDeps

  constructor (deps: DialogueDeps) {
    this.#deps = deps
  }

  syncTurn (token: string, input: TurnInput): ChatResponse {
    const at = this.#deps.clock.now()
    const request = this.#request(token, input)
    const response = this.#answer(token, input, request.questionId, at)
    // Both at once: a poll that wakes on the request sees the answer with it.
    this.#deps.store.appendAll(token, input.clientId, at, [
      ['clientRequest', request],
      ['botResponse', { questionId: request.questionId, ...cidOf(input), data: response.data, token, clientId: input.clientId }]
    ])
    return response
  }

  asyncTurn (token: string, input: TurnInput): { questionId: string } {
    const request = this.#request(token, input)
    this.#deps.store.append(token, input.clientId, this.#deps.clock.now(), 'clientRequest', request)
    this.#deps.timers.after(this.#deps.asyncDelayMs, () => {
      this.#deps.webhook.post([this.#answer(token, input, request.questionId, this.#deps.clock.now())])
    })
    return { questionId: request.questionId }
  }

  /** A new question: the bot's pending timeout is off, and this is the clientRequest event's body. */
  #request (token: string, input: TurnInput): { questionId: string } & Record<string, unknown> {
    this.#deps.outreach.clientSpoke(token, input.clientId)
    return { questionId: randomUUID(), ...requestOf(input), token }
  }

  /** The bot's answer: kept in the history and followed up (agent, timeout) as the bot asked. */
  #answer (token: string, input: TurnInput, questionId: string, at: number): ChatResponse {
    const { clientId, cid } = input
    const client = this.#deps.store.client(token, clientId)
    const turn = botTurn(input)
    const response = chatResponse({ token, clientId, questionId, cid, at, ...turn, newSessionStarted: client.turns === 0 })
    client.turns++
    client.addMessage(at, { questionId, timestamp: response.timestamp, request: requestOf(input), response: response.data })
    const followUp = turn.followUp
    if (followUp?.kind === 'agent') this.#deps.outreach.scheduleAgent(token, clientId, input.query ?? '')
    if (followUp?.kind === 'timeout') this.#deps.outreach.armTimeout(token, clientId, followUp.seconds, followUp.targetState)
    return response
  }
}

/** The request as events and history show it: what the client sent, without clientId or absent fields. */
function requestOf (input: TurnInput): Record<string, unknown> {
  const request: Record<string, unknown> = { ...cidOf(input) }
  if (input.query !== undefined) request.query = input.query
  if (input.event !== undefined) request.event = input.event
  if (input.data !== undefined) request.data = input.data
  return request
}

function cidOf (input: TurnInput): { cid?: string } {
  return input.cid === undefined ? {} : { cid: input.cid }
}
