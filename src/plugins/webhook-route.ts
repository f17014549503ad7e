import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { WebhookInbox } from '../webhook/inbox.js'

export interface WebhookRouteOptions {
  inbox: WebhookInbox
  /** The secret of each channel that takes webhooks, by channel name (see webhookSecrets). */
  secrets: Map<string, string>
  maxBytes: number
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/** What a secret sent to a channel without a webhook is compared with: nothing matches it, and it takes as long. */
const NOWHERE = digest(randomBytes(32).toString('hex'))

interface HookParams { channel: string, secret: string }

/**
 * The channel's webhook: `POST /v1/webhook/{channel}/{secret}`. The platform
 * offers nothing but a URL, so the secret travels in the path. A wrong secret,
 * or a channel without a webhook, looks like no route at all.
 */
export async function webhookRoutes (app: FastifyInstance, o: WebhookRouteOptions): Promise<void> {
  const wants = new Map([...o.secrets].map(([channel, secret]) => [channel, digest(secret)]))
  let refused = 0
  // The body is read as text: the token the platform echoes is removed before anything parses it further.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: o.maxBytes }, (_req, body, done) => { done(null, body) })

  // Checked as soon as the path is known, before a byte of the body is read: a caller without the secret
  // can neither make the bridge buffer a large upload nor hold a socket open with an unfinished one.
  const guard = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const { channel, secret } = req.params as HookParams
    if (timingSafeEqual(digest(secret), wants.get(channel) ?? NOWHERE)) return undefined
    refused++
    // Logged at the first refusal and then at powers of two, so a scan cannot flood the log.
    if ((refused & (refused - 1)) === 0) req.log.warn({ refused }, 'webhook call with a wrong secret or to a channel without a webhook')
    // The upload is left unread: the socket closes once the answer is out, rather than wait for the rest.
    reply.header('connection', 'close')
    return await reply.code(404).send({ error: 'not.found', message: 'no such webhook' })
  }

  app.post('/v1/webhook/:channel/:secret', { onRequest: guard }, async (req, reply) => {
    const { channel } = req.params as HookParams
    const answer = await o.inbox.receive(channel, typeof req.body === 'string' ? req.body : '')
    if (answer.status >= 400) req.log.info({ channel, status: answer.status, error: answer.body.error }, 'webhook delivery refused')
    return await reply.code(answer.status).send(answer.body)
  })
}
