import type { EmulatorApp } from './app.js'
import type { EmulatorCore } from './core.js'
import { EmulatorError, ErrorCode } from './errors.js'
import { chatRoutes as paths } from './paths.js'
import { ClientParams, EntryHistoryQuery, HistoryQuery, MessageParams, StateBody, StatusBody, StatusesBody } from './schemas.js'
import type { ClientRecord } from './store.js'

const DEFAULT_HISTORY_LIMIT = 100
const MAX_HISTORY_LIMIT = 1000

/** What the upstream keeps per client: history, chat state, message statuses. */
export function clientRoutes (app: EmulatorApp, core: EmulatorCore): void {
  if (core.flags['entry-history']) entryHistoryRoute(app, core)
  else historyRoute(app, core)

  app.route({
    ...paths.getState,
    schema: { params: ClientParams },
    handler: async request => core.store.find(request.params.token, request.params.clientId)?.state ?? {}
  })

  app.route({
    ...paths.setState,
    schema: { params: ClientParams, body: StateBody },
    handler: async request => {
      const { token, clientId } = request.params
      core.store.client(token, clientId).state = request.body
      core.store.append(token, clientId, core.clock.now(), 'stateUpdate', { state: request.body, token })
      return request.body
    }
  })

  app.route({
    ...paths.getStatus,
    schema: { params: MessageParams },
    handler: async request => {
      const { token, clientId, questionId } = request.params
      return { questionId, status: statusOf(core.store.find(token, clientId), questionId) }
    }
  })

  app.route({
    ...paths.setStatus,
    schema: { params: MessageParams, body: StatusBody },
    handler: async request => {
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
    handler: async request => {
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
    handler: async request => ({ count: core.store.find(request.params.token, request.params.clientId)?.unread() ?? 0 })
  })
}

/** The emulator's own reading: bot and agent messages with the request each answers, in a span of `from` to `to`. */
function historyRoute (app: EmulatorApp, core: EmulatorCore): void {
  app.route({
    ...paths.history,
    schema: { params: ClientParams, querystring: HistoryQuery },
    handler: async request => {
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
    handler: async request => {
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
