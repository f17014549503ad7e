import type { EmulatorApp } from './app.js'
import type { EmulatorCore } from './core.js'
import { EmulatorError, ErrorCode } from './errors.js'
import type { Fault } from './faults.js'
import { OPERATOR_PREFIX } from './paths.js'
import { AgentReplyBody, CampaignBody, FaultBody, PublishBody, TokenParams } from './schemas.js'

/**
 * The other side of the chat, over HTTP, for demos, tests in other processes
 * and benchmarks: an agent answering, events pushed by hand, campaigns,
 * faults and counters. Not part of the Chat API.
 */
export function operatorRoutes (app: EmulatorApp, core: EmulatorCore): void {
  app.post(`${OPERATOR_PREFIX}/:token/agent-reply`, { schema: { params: TokenParams, body: AgentReplyBody } }, async request =>
    core.outreach.agentReply(request.params.token, request.body.clientId, request.body.text))

  app.post(`${OPERATOR_PREFIX}/:token/publish`, { schema: { params: TokenParams, body: PublishBody } }, async request =>
    core.publish(request.params.token, request.body.clientId, request.body.type, request.body.body))

  app.post(`${OPERATOR_PREFIX}/:token/campaign`, { schema: { params: TokenParams, body: CampaignBody } }, async (request, reply) => {
    core.outreach.campaign(request.params.token, request.body.clientIds, request.body.text)
    return reply.code(202).send({ clients: request.body.clientIds.length })
  })

  app.get(`${OPERATOR_PREFIX}/stats`, async () => ({ activePolls: core.polls.total, requests: core.requests.counts }))

  app.get(`${OPERATOR_PREFIX}/connections`, async () => core.connections.snapshot())

  app.post(`${OPERATOR_PREFIX}/faults`, { schema: { body: FaultBody } }, async request => {
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
