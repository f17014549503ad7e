import type { EmulatorApp } from './app.js'
import type { EmulatorCore } from './core.js'
import type { TurnInput } from './dialogue.js'
import { EmulatorError, ErrorCode } from './errors.js'
import { EventsPoll } from './events-poll.js'
import { chatRoutes as paths } from './paths.js'
import { EventsQuery, TokenParams, TurnBody, TurnQuery } from './schemas.js'

/** The client-facing half of the Chat API: sending (sync, GET, async) and the /events long poll. */
export function chatRoutes (app: EmulatorApp, core: EmulatorCore): void {
  app.route({
    ...paths.send,
    schema: { params: TokenParams, body: TurnBody },
    handler: async request => core.dialogue.syncTurn(request.params.token, turnOf(request.body))
  })

  app.route({
    ...paths.sendGet,
    schema: { params: TokenParams, querystring: TurnQuery },
    handler: async request => core.dialogue.syncTurn(request.params.token, turnOf(request.query))
  })

  app.route({
    ...paths.sendAsync,
    schema: { params: TokenParams, body: TurnBody },
    handler: async request => core.dialogue.asyncTurn(request.params.token, turnOf(request.body))
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
        answer => reply.send(answer instanceof EmulatorError ? answer : { events: core.injector.rewrite(request, answer) })
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
