/**
 * The emulator's routes: the Chat API (sending, the /events long poll, what
 * the upstream keeps per client) and the operator's, with the request shape
 * of each.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from 'fastify'
import { MESSAGE_STATUSES, type ClientRecord } from './channel-store.js'
import type { TurnInput } from './conversation.js'
import type { EmulatorCore } from './core.js'
import { EmulatorError, ErrorCode } from './emulator-error.js'
import { FAULT_KINDS, type Fault } from './faults.js'
import { EventsPoll } from './long-poll.js'
import { OPERATOR_PREFIX, chatRoutes as paths } from './route-table.js'

export type EmulatorApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>

/** Every route of the emulator: the Chat API's, then the operator's. */
export function addRoutes (app: EmulatorApp, core: EmulatorCore): void {
  chatRoutes(app, core)
  clientRoutes(app, core)
  operatorRoutes(app, core)
}

// Request shapes of every route. Query values stay strings (coercion is off)
// and numbers are checked by pattern, so that `ts=abc` is a 400, not a 0.
const EPOCH_MS = '^-?\\d+(\\.\\d+)?$'
const COUNT = '^\\d+$'

const TokenParams = Type.Object({ token: Type.String() })
const ClientParams = Type.Object({ token: Type.String(), clientId: Type.String() })
const MessageParams = Type.Object({ token: Type.String(), clientId: Type.String(), questionId: Type.String() })

const turnFields = {
  clientId: Type.String({ minLength: 1 }),
  query: Type.Optional(Type.String()),
  event: Type.Optional(Type.String({ minLength: 1 })),
  cid: Type.Optional(Type.String())
}
const TurnBody = Type.Object({ ...turnFields, data: Type.Optional(Type.Record(Type.String(), Type.Unknown())) })
const TurnQuery = Type.Object(turnFields)

const EventsQuery = Type.Object({
  clientId: Type.String({ minLength: 1 }),
  cid: Type.Optional(Type.String()),
  ts: Type.Optional(Type.String({ pattern: EPOCH_MS })),
  all: Type.Optional(Type.String())
})

const HistoryQuery = Type.Object({
  from: Type.Optional(Type.String({ pattern: EPOCH_MS })),
  to: Type.Optional(Type.String({ pattern: EPOCH_MS })),
  limit: Type.Optional(Type.String({ pattern: COUNT }))
})

/** The history query of the 'entry-history' profile; `from` and `to` are then ignored. */
const EntryHistoryQuery = Type.Object({
  fromTimestamp: Type.Optional(Type.String({ pattern: EPOCH_MS })),
  toTimestamp: Type.Optional(Type.String({ pattern: EPOCH_MS })),
  limit: Type.Optional(Type.String({ pattern: COUNT }))
})

const StatusValue = Type.Union(MESSAGE_STATUSES.map((s) => Type.Literal(s)))
const StatusBody = Type.Object({ status: StatusValue })
const StatusesBody = Type.Object({
  statuses: Type.Array(Type.Object({ questionId: Type.String(), status: StatusValue }))
})

/** Any JSON object; the state is stored as is. */
const StateBody = Type.Object({}, { additionalProperties: true })

const AgentReplyBody = Type.Object({ clientId: Type.String({ minLength: 1 }), text: Type.String() })
const PublishBody = Type.Object({
  clientId: Type.String({ minLength: 1 }),
  type: Type.String({ minLength: 1 }),
  body: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
})
const CampaignBody = Type.Object({ clientIds: Type.Array(Type.String({ minLength: 1 })), text: Type.String() })

/** A fault as POST /operator/faults takes it; JSON has no Infinity, so count may be the string "Infinity". */
const FaultBody = Type.Object({
  route: Type.Optional(Type.String()),
  kind: Type.Union(FAULT_KINDS.map((k) => Type.Literal(k))),
  count: Type.Optional(Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Literal('Infinity')])),
  status: Type.Optional(Type.Integer({ minimum: 100, maximum: 599 })),
  retryAfter: Type.Optional(Type.Number({ minimum: 0 })),
  delayMs: Type.Optional(Type.Number({ minimum: 0 }))
})

/** The client-facing half of the Chat API: sending (sync, GET, async) and the /events long poll. */
function chatRoutes (app: EmulatorApp, core: EmulatorCore): void {
  app.route({
    ...paths.send,
    schema: { params: TokenParams, body: TurnBody },
    handler: async (request) => core.dialogue.syncTurn(request.params.token, turnOf(request.body))
  })

  app.route({
    ...paths.sendGet,
    schema: { params: TokenParams, querystring: TurnQuery },
    handler: async (request) => core.dialogue.syncTurn(request.params.token, turnOf(request.query))
  })

  app.route({
    ...paths.sendAsync,
    schema: { params: TokenParams, body: TurnBody },
    handler: async (request) => core.dialogue.asyncTurn(request.params.token, turnOf(request.body))
  })

  app.route({
    ...paths.events,
    schema: { params: TokenParams, querystring: EventsQuery },
    // Not async: the answer is sent from the poll, maybe long after the handler returned.
    handler: (request, reply) => {
      const { token } = request.params
      const { clientId, cid, ts, all } = request.query
      const poll = new EventsPoll(
        core,
        { token, clientId, client: core.store.client(token, clientId) },
        { cid: cid === '' ? undefined : cid, ts: ts === undefined ? undefined : Number(ts), all: all === 'true' },
        // An error goes through the error handler, which gives it the upstream's shape.
        (answer) => reply.send(answer instanceof EmulatorError ? answer : { events: core.injector.rewrite(request, answer) })
      )
      // The socket can be gone already when a delay fault held the request back.
      if (request.raw.socket.destroyed) return
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) poll.abort()
      })
      poll.start()
    }
  })
}

/** Exactly one of `query` and `event`, as the upstream documents it. */
function turnOf (input: TurnInput): TurnInput {
  if ((input.query === undefined) === (input.event === undefined)) {
    throw new EmulatorError(400, ErrorCode.INVALID, 'give either query or event')
  }
  return input
}

const DEFAULT_HISTORY_LIMIT = 100
const MAX_HISTORY_LIMIT = 1000

/** What the upstream keeps per client: history, chat state, message statuses. */
function clientRoutes (app: EmulatorApp, core: EmulatorCore): void {
  if (core.flags['entry-history']) entryHistoryRoute(app, core)
  else historyRoute(app, core)

  app.route({
    ...paths.getState,
    schema: { params: ClientParams },
    handler: async (request) => core.store.find(request.params.token, request.params.clientId)?.state ?? {}
  })

  app.route({
    ...paths.setState,
    schema: { params: ClientParams, body: StateBody },
    handler: async (request) => {
      const { token, clientId } = request.params
      core.store.client(token, clientId).state = request.body
      core.store.append(token, clientId, core.clock.now(), 'stateUpdate', { state: request.body, token })
      return request.body
    }
  })

  app.route({
    ...paths.getStatus,
    schema: { params: MessageParams },
    handler: async (request) => {
      const { token, clientId, questionId } = request.params
      return { questionId, status: statusOf(core.store.find(token, clientId), questionId) }
    }
  })

  app.route({
    ...paths.setStatus,
    schema: { params: MessageParams, body: StatusBody },
    handler: async (request) => {
      const { token, clientId, questionId } = request.params
      const client = core.store.find(token, clientId)
      statusOf(client, questionId)
      client?.statuses.set(questionId, request.body.status)
      return { questionId, status: request.body.status }
    }
  })

  app.route({
    ...paths.setStatuses,
    schema: { params: ClientParams, body: StatusesBody },
    handler: async (request) => {
      const { token, clientId } = request.params
      const client = core.store.find(token, clientId)
      // All or nothing: check every id before changing any.
      for (const { questionId } of request.body.statuses) statusOf(client, questionId)
      for (const { questionId, status } of request.body.statuses) client?.statuses.set(questionId, status)
      return { statuses: request.body.statuses }
    }
  })

  app.route({
    ...paths.unreadCount,
    schema: { params: ClientParams },
    handler: async (request) => ({ count: core.store.find(request.params.token, request.params.clientId)?.unread() ?? 0 })
  })
}

/** The emulator's own reading: bot and agent messages with the request each answers, in a span of `from` to `to`. */
function historyRoute (app: EmulatorApp, core: EmulatorCore): void {
  app.route({
    ...paths.history,
    schema: { params: ClientParams, querystring: HistoryQuery },
    handler: async (request) => {
      const { token, clientId } = request.params
      const { from, to, limit } = request.query
      const messages = core.store.find(token, clientId)?.history.messages(lowerOf(from), upperOf(to), countOf(limit))
      return { messages: messages ?? [] }
    }
  })
}

/** 'entry-history': one entry per message, as a sibling history API of the platform answers. */
function entryHistoryRoute (app: EmulatorApp, core: EmulatorCore): void {
  app.route({
    ...paths.history,
    schema: { params: ClientParams, querystring: EntryHistoryQuery },
    handler: async (request) => {
      const { token, clientId } = request.params
      const { fromTimestamp, toTimestamp, limit } = request.query
      const client = core.store.find(token, clientId)
      if (client === undefined) return { totalCount: 0, messages: [] }
      return client.history.entries(lowerOf(fromTimestamp), upperOf(toTimestamp), countOf(limit), client.statuses)
    }
  })
}

const lowerOf = (from: string | undefined): number => from === undefined ? Number.NEGATIVE_INFINITY : Number(from)
const upperOf = (to: string | undefined): number => to === undefined ? Number.POSITIVE_INFINITY : Number(to)
const countOf = (limit: string | undefined): number =>
  Math.min(limit === undefined ? DEFAULT_HISTORY_LIMIT : Number(limit), MAX_HISTORY_LIMIT)

function statusOf (client: ClientRecord | undefined, questionId: string): string {
  const status = client?.statuses.get(questionId)
  if (status === undefined) throw new EmulatorError(404, ErrorCode.MESSAGE_NOT_FOUND, `no bot message ${questionId}`)
  return status
}

/**
 * The other side of the chat, over HTTP, for demos, tests in other processes
 * and benchmarks: an agent answering, events pushed by hand, campaigns,
 * faults and counters. Not part of the Chat API.
 */
function operatorRoutes (app: EmulatorApp, core: EmulatorCore): void {
  app.post(`${OPERATOR_PREFIX}/:token/agent-reply`, { schema: { params: TokenParams, body: AgentReplyBody } }, async (request) => {
    knownClient(core, request.params.token, request.body.clientId)
    return core.outreach.agentReply(request.params.token, request.body.clientId, request.body.text)
  })

  app.post(`${OPERATOR_PREFIX}/:token/publish`, { schema: { params: TokenParams, body: PublishBody } }, async (request) => {
    knownClient(core, request.params.token, request.body.clientId)
    return core.publish(request.params.token, request.body.clientId, request.body.type, request.body.body)
  })

  app.post(`${OPERATOR_PREFIX}/:token/campaign`, { schema: { params: TokenParams, body: CampaignBody } }, async (request, reply) => {
    core.outreach.campaign(request.params.token, request.body.clientIds, request.body.text)
    return reply.code(202).send({ clients: request.body.clientIds.length })
  })

  app.get(`${OPERATOR_PREFIX}/stats`, async () => ({ activePolls: core.polls.total, requests: core.requests.counts }))

  app.get(`${OPERATOR_PREFIX}/connections`, async () => core.connections.snapshot())

  app.post(`${OPERATOR_PREFIX}/faults`, { schema: { body: FaultBody } }, async (request) => {
    const { count, route, ...rest } = request.body
    // The route is any string here; add() rejects one that names no route.
    const fault: Fault = { ...rest, route: route as Fault['route'], count: count === 'Infinity' ? Number.POSITIVE_INFINITY : count }
    try {
      core.faults.add(fault)
    } catch (err) {
      throw new EmulatorError(400, ErrorCode.INVALID, (err as Error).message)
    }
    return { pending: core.faults.pending }
  })

  app.delete(`${OPERATOR_PREFIX}/faults`, async () => {
    core.faults.clear()
    return { pending: 0 }
  })
}

/**
 * An agent's reply or an event for a client the channel has never seen goes
 * nowhere anyone looks: most often a placeholder clientId left in a command
 * line. Say so instead of answering 200. (Campaigns may reach new clients.)
 */
function knownClient (core: EmulatorCore, token: string, clientId: string): void {
  core.checkToken(token)
  if (core.store.find(token, clientId) !== undefined) return
  throw new EmulatorError(404, ErrorCode.CLIENT_NOT_FOUND, `no client "${clientId}" has used this channel yet: give the clientId of a chat that sent a message or is connected (npm run chat prints it; on the demo page it is the Visitor line)`)
}
