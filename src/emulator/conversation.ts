/**
 * The conversation with each client: the turns it takes with the bot, and
 * the messages it gets without asking (an agent, a campaign, a bot timeout).
 */
import { randomUUID } from 'node:crypto'
import { botTurn, chatResponse, text, type ChatResponse } from './bot.js'
import type { Author, ChannelStore } from './channel-store.js'
import type { UpstreamEvent } from './event-log.js'
import type { ProfileFlags } from './profiles.js'
import type { TimerSet, UpstreamClock } from './timekeeping.js'
import type { WebhookSender } from './webhook-sender.js'

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
  webhook: WebhookSender
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
  private readonly deps: DialogueDeps

  constructor (deps: DialogueDeps) {
    this.deps = deps
  }

  syncTurn (token: string, input: TurnInput): ChatResponse {
    const { store, timers, clock, flags, lateStampMs } = this.deps
    const at = clock.now()
    const request = this.request(token, input)
    const response = this.answer(token, input, request.questionId, at, at)
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
    const request = this.request(token, input)
    const askedAt = this.deps.clock.now()
    this.deps.store.append(token, input.clientId, askedAt, 'clientRequest', request)
    this.deps.timers.after(this.deps.asyncDelayMs, () => {
      this.deps.webhook.post([this.answer(token, input, request.questionId, askedAt, this.deps.clock.now())])
    })
    return { questionId: request.questionId }
  }

  /** A new question: the bot's pending timeout is off, and this is the clientRequest event's body. */
  private request (token: string, input: TurnInput): { questionId: string } & Record<string, unknown> {
    this.deps.outreach.clientSpoke(token, input.clientId)
    return { questionId: randomUUID(), ...requestOf(input), token }
  }

  /** The bot's answer at `at` to a request of `askedAt`: kept in the history and followed up (agent, timeout) as the bot asked. */
  private answer (token: string, input: TurnInput, questionId: string, askedAt: number, at: number): ChatResponse {
    const { clientId, cid } = input
    const { store, clock } = this.deps
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
    if (followUp?.kind === 'agent') this.deps.outreach.scheduleAgent(token, clientId, input.query ?? '')
    if (followUp?.kind === 'timeout') this.deps.outreach.armTimeout(token, clientId, followUp.seconds, followUp.targetState)
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

export interface OutreachDeps {
  store: ChannelStore
  clock: UpstreamClock
  webhook: WebhookSender
  timers: TimerSet
  agentDelayMs: number
}

/**
 * Messages a client gets without asking in the same breath: an agent's reply,
 * a text campaign, the bot speaking up when its timeout expires. All of them
 * reach the webhook; only agent replies also go to /events.
 */
export class Outreach {
  private readonly deps: OutreachDeps
  /** The pending bot timeout of each client; a new client message cancels it. */
  private readonly timeouts = new Map<string, NodeJS.Timeout | undefined>()

  constructor (deps: OutreachDeps) {
    this.deps = deps
  }

  agentReply (token: string, clientId: string, message: string): UpstreamEvent {
    const { store, clock, webhook } = this.deps
    const at = clock.now()
    const questionId = randomUUID()
    const replies = [text(message, '/agent')]
    const item = store.append(token, clientId, at, 'agentResponse', { questionId, clientId, text: message, data: { replies }, token })
    const response = chatResponse({ token, clientId, questionId, timestamp: clock.format(at), nlpClass: '/agent', confidence: 1, replies })
    webhook.post([this.keep(at, 'OPERATOR', response)])
    return item
  }

  campaign (token: string, clientIds: string[], message: string): void {
    const { clock, webhook } = this.deps
    const timestamp = clock.format(clock.now())
    webhook.post(clientIds.map((clientId) => chatResponse({
      token, clientId, questionId: randomUUID(), timestamp, nlpClass: '/campaign', confidence: 1, replies: [text(message, '/campaign')]
    })))
  }

  /** The simulated agent answers the hand-over after agentDelayMs. */
  scheduleAgent (token: string, clientId: string, firstMessage: string): void {
    this.deps.timers.after(this.deps.agentDelayMs, () => {
      this.agentReply(token, clientId, `Hi, this is Alex, a live agent. You wrote: "${firstMessage}". How can I help?`)
    })
  }

  /** Arms the bot's timeout: unless the client writes within `seconds`, the bot speaks to the webhook. */
  armTimeout (token: string, clientId: string, seconds: number, targetState: string): void {
    this.clientSpoke(token, clientId)
    const key = `${token}\u0000${clientId}`
    this.timeouts.set(key, this.deps.timers.after(seconds * 1000, () => {
      this.timeouts.delete(key)
      const at = this.deps.clock.now()
      const replies = [text('Are you still there?', targetState)]
      const timestamp = this.deps.clock.format(at)
      const response = chatResponse({ token, clientId, questionId: randomUUID(), timestamp, nlpClass: targetState, confidence: 1, replies })
      this.deps.webhook.post([this.keep(at, 'BOT', response)])
    }))
  }

  clientSpoke (token: string, clientId: string): void {
    const key = `${token}\u0000${clientId}`
    if (!this.timeouts.has(key)) return
    this.deps.timers.cancel(this.timeouts.get(key))
    this.timeouts.delete(key)
  }

  /** Bot and agent messages go to the history, unread until the client says otherwise. */
  private keep (at: number, author: Author, response: ChatResponse): ChatResponse {
    const { questionId, timestamp, data } = response
    this.deps.store.client(response.token, response.clientId)
      .addMessage({ at, author, message: { questionId, timestamp, request: null, response: data } })
    return response
  }
}
