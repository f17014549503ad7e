import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { WebhookInbox } from '../webhook/inbox.js'

export interface WebhookRouteOptions { inbox: WebhookInbox, secret: string, maxBytes: number }

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/**
 * The channel's webhook: `POST /v1/webhook/{channel}/{secret}`. The platform
 * offers nothing but a URL, so the secret travels in the path. A wrong secret
 * looks like no route at all.
 */
export async function webhookRoutes (app: FastifyInstance, o: WebhookRouteOptions): Promise<void> {
  const want = digest(o.secret)
  let refused = 0
  // The body is read as text: the token the platform echoes is removed before anything parses it further.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: o.maxBytes }, (_req, body, done) => { done(null, body) })

  app.post('/v1/webhook/:channel/:secret', async (req, reply) => {
    const { channel, secret } = req.params as { channel: string, secret: string }
    if (!timingSafeEqual(digest(secret), want)) {
      refused++
      // Logged at the first refusal and then at powers of two, so a scan cannot flood the log.
      if ((refused & (refused - 1)) === 0) req.log.warn({ refused }, 'webhook call with a wrong secret')
      return await reply.code(404).send({ error: 'not.found', message: 'no such webhook' })
    }
    const answer = await o.inbox.receive(channel, typeof req.body === 'string' ? req.body : '')
    if (answer.status >= 400) req.log.info({ channel, status: answer.status, error: answer.body.error }, 'webhook delivery refused')
    return await reply.code(answer.status).send(answer.body)
  })
}
