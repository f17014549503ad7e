import type { Channel, Config } from '../config.js'
import type { Hub } from '../feed/hub.js'
import { WebhookInbox } from '../webhook/inbox.js'
import type { Webhooks } from './feeds.js'
import type { Metrics } from './metrics.js'
import { rootPlugin } from './root-plugin.js'
import { webhookRoutes } from './webhook-route.js'

export interface WebhookReceiverOptions {
  config: Config
  /** The webhook's secret, WEBHOOK_SECRET. */
  secret: string
  channels: Channel[]
  webhooks: Webhooks
  hub: Hub
  metrics: Metrics | undefined
}

/**
 * The webhook, from its route to the sockets. Every instance hears of each
 * kept object (in a cluster, through Redis) and delivers it to its own
 * sockets; the inbox is `app.bridge.inbox`.
 */
export const webhookReceiver = rootPlugin('webhook-receiver', async (app, o: WebhookReceiverOptions) => {
  const { config, webhooks, hub, metrics } = o
  webhooks.mailbox.onMail((channel, clientId, entries) => {
    for (const m of entries) if (m.questionId !== undefined) webhooks.echoes.webhookDelivered(channel, clientId, m.questionId)
    hub.deliverWebhook(channel, clientId, entries)
  })
  const inbox = new WebhookInbox({
    ...webhooks,
    tokens: new Map(o.channels.map((c) => [c.name, c.token])),
    ratePerS: config.WEBHOOK_RATE_PER_S,
    onObjects: metrics === undefined
      ? undefined
      : (channel, accepted, duplicates) => {
          metrics.webhookObjects.inc({ channel, result: 'accepted' }, accepted)
          metrics.webhookObjects.inc({ channel, result: 'duplicate' }, duplicates)
        }
  })
  app.bridge.inbox = inbox
  // A context of its own: the route reads every body as text, and that must not reach the other routes.
  await app.register(webhookRoutes, { inbox, secret: o.secret, maxBytes: config.WEBHOOK_MAX_BYTES })
})
