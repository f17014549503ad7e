import { randomUUID } from 'node:crypto'
import { botTurn } from './bot.js'
import type { UpstreamClock } from './clock.js'
import type { Outreach } from './outreach.js'
import { chatResponse, type ChatResponse } from './response.js'
import type { ProfileFlags } from './settings.js'
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
  /** With 'late-stamps': how long after its request a sync turn's answer is stored. */
  lateStampMs: number
  flags: ProfileFlags
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
    const { store, timers, clock, flags, lateStampMs } = this.#deps
    const at = clock.now()
    const request = this.#request(token, input)
    const response = this.#answer(token, input, request.questionId, at, at)
    const answer: [string, Record<string, unknown>] =
      ['botResponse', { questionId: request.questionId, ...cidOf(input), data: response.data, token, clientId: input.clientId }]
    if (flags['late-stamps']) {
      // Stored lateStampMs later, after whatever came meanwhile, yet stamped with the request's time.
      store.append(token, input.clientId, at, 'clientRequest', request)
      timers.after(lateStampMs, () => store.append(token, input.clientId, at, ...answer))
      return response
    }
    // Both at once: a poll that wakes on the request sees the answer with it.
    store.appendAll(token, input.clientId, at, [['clientRequest', request], answer])
    return response
  }

  asyncTurn (token: string, input: TurnInput): { questionId: string } {
    const request = this.#request(token, input)
    const askedAt = this.#deps.clock.now()
    this.#deps.store.append(token, input.clientId, askedAt, 'clientRequest', request)
    this.#deps.timers.after(this.#deps.asyncDelayMs, () => {
      this.#deps.webhook.post([this.#answer(token, input, request.questionId, askedAt, this.#deps.clock.now())])
    })
    return { questionId: request.questionId }
  }

  /** A new question: the bot's pending timeout is off, and this is the clientRequest event's body. */
  #request (token: string, input: TurnInput): { questionId: string } & Record<string, unknown> {
    this.#deps.outreach.clientSpoke(token, input.clientId)
    return { questionId: randomUUID(), ...requestOf(input), token }
  }

  /** The bot's answer at `at` to a request of `askedAt`: kept in the history and followed up (agent, timeout) as the bot asked. */
  #answer (token: string, input: TurnInput, questionId: string, askedAt: number, at: number): ChatResponse {
    const { clientId, cid } = input
    const { store, clock } = this.#deps
    const client = store.client(token, clientId)
    const turn = botTurn(input)
    const timestamp = clock.format(at)
    const response = chatResponse({ token, clientId, questionId, cid, timestamp, ...turn, newSessionStarted: client.turns === 0 })
    client.turns++
    client.addMessage({
      at,
      author: 'BOT',
      message: { questionId, timestamp, request: requestOf(input), response: response.data },
      asked: { at: askedAt, timestamp: clock.format(askedAt) }
    })
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
