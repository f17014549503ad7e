import type { Channel, Config } from '../config.js'
import type { Cluster } from '../cluster/cluster.js'
import type { Hub } from '../feed/hub.js'
import type { Sessions } from '../socket/sessions.js'
import { WebhookInbox } from '../webhook/inbox.js'
import type { Webhooks } from './feeds.js'
import type { Metrics } from './metrics.js'
import { buildOfflineHook } from './offline-hook.js'
import { rootPlugin } from './root-plugin.js'
import { webhookRoutes } from './webhook-route.js'

export interface WebhookReceiverOptions {
  config: Config
  channels: Channel[]
  webhooks: Webhooks
  hub: Hub
  metrics: Metrics | undefined
  /** For the offline hook: whether a client has a socket here, and the Redis side that says whether it has one anywhere. */
  sessions: Sessions
  cluster: Cluster | undefined
}

/**
 * The secret each channel's webhook takes, by channel name. A channel with a
 * `webhookSecret` of its own takes that one only. WEBHOOK_SECRET serves a
 * channel without one only where it is the sole channel: shared by several,
 * one secret would let a delivery meant for one channel reach the clients of
 * another. A channel missing from the map takes no webhook (404).
 */
export function webhookSecrets (channels: Channel[], shared: string | undefined): Map<string, string> {
  const secrets = new Map<string, string>()
  for (const c of channels) {
    const secret = c.webhookSecret ?? (channels.length === 1 ? shared : undefined)
    if (secret !== undefined) secrets.set(c.name, secret)
  }
  return secrets
}

/** What an operator should hear at start-up about WEBHOOK_SECRET going unused (never a secret itself). */
export function webhookWarnings (channels: Channel[], shared: string | undefined): string[] {
  if (shared === undefined) return []
  const secrets = webhookSecrets(channels, shared)
  const deaf = channels.filter((c) => !secrets.has(c.name)).map((c) => `"${c.name}"`)
  if (deaf.length > 0) {
    return [`WEBHOOK_SECRET serves a bridge of one channel only; with ${channels.length}, these take no webhook until CHANNELS gives each a "webhookSecret" of its own: ${deaf.join(', ')}`]
  }
  if (channels.every((c) => c.webhookSecret !== undefined)) return ['WEBHOOK_SECRET is set but every channel has a "webhookSecret" of its own: it is not used']
  return []
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
  const offline = buildOfflineHook(app, { config, sessions: o.sessions, cluster: o.cluster, metrics })
  const inbox = new WebhookInbox({
    ...webhooks,
    tokens: new Map(o.channels.map((c) => [c.name, c.token])),
    ratePerS: config.WEBHOOK_RATE_PER_S,
    onObjects: metrics === undefined
      ? undefined
      : (channel, accepted, duplicates) => {
          metrics.webhookObjects.inc({ channel, result: 'accepted' }, accepted)
          metrics.webhookObjects.inc({ channel, result: 'duplicate' }, duplicates)
        },
    onNewMail: offline === undefined ? undefined : (channel, clientId, mail) => { offline.offer(channel, clientId, mail) }
  })
  app.bridge.inbox = inbox
  for (const warning of webhookWarnings(o.channels, config.WEBHOOK_SECRET)) app.log.warn(warning)
  const secrets = webhookSecrets(o.channels, config.WEBHOOK_SECRET)
  // A context of its own: the route reads every body as text, and that must not reach the other routes.
  await app.register(webhookRoutes, { inbox, secrets, maxBytes: config.WEBHOOK_MAX_BYTES })
})
