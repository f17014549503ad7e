import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Config } from '../config.js'
import { Cluster } from '../cluster/cluster.js'
import { redisSettings } from '../cluster/redis.js'
import type { CursorCodec } from '../feed/cursor.js'
import type { Hub } from '../feed/hub.js'
import { LocalHub } from '../feed/local-hub.js'
import { PollGate } from '../feed/poll-gate.js'
import type { ChatApi } from '../upstream/chat-api.js'
import { Echoes } from '../webhook/echoes.js'
import { Mailbox, type MailStore } from '../webhook/mailbox.js'
import type { Metrics } from './metrics.js'

/** Webhook objects kept per client for resumes. */
const MAIL_PER_CLIENT = 500

/** The webhook's mail and the answers already seen, when WEBHOOK_SECRET or a channel's webhookSecret is set. */
export interface Webhooks { mailbox: MailStore, echoes: Echoes }

export interface Feeds {
  /** Paces the start of new upstream polls. */
  gate: PollGate
  /** The Redis side, when REDIS_URL is set. */
  cluster: Cluster | undefined
  /** Where sockets subscribe: the local hub, or the cluster's hub in front of it. */
  hub: Hub
  webhooks: Webhooks | undefined
}

export interface FeedsOptions {
  apis: Map<string, ChatApi>
  cursors: CursorCodec
  metrics: Metrics | undefined
}

/** The in-process mailbox, swept of old mail now and then. */
function localMailbox (app: FastifyInstance, retentionMs: number): Mailbox {
  const mailbox = new Mailbox(retentionMs, MAIL_PER_CLIENT)
  const sweep = setInterval(() => { mailbox.sweep() }, 60_000)
  sweep.unref()
  app.addHook('onClose', async () => { clearInterval(sweep) })
  return mailbox
}

function onPublish (metrics: Metrics | undefined): ((channel: string, ts: number, sockets: number) => void) | undefined {
  if (metrics === undefined) return undefined
  return (channel, ts, sockets) => {
    metrics.upstreamEvents.inc({ channel })
    metrics.eventsForwarded.inc({ channel }, sockets)
    if (sockets > 0) metrics.eventAge.observe({ channel }, Math.max(0, Date.now() - ts) / 1000)
  }
}

/**
 * The upstream feeds sockets subscribe to. With REDIS_URL, instances share
 * upstream polls, results, send lanes and webhook mail through Redis.
 */
export function buildFeeds (app: FastifyInstance, config: Config, o: FeedsOptions): Feeds {
  const hubLog: FastifyBaseLogger = app.log.child({ component: 'hub' })
  const gate = new PollGate(config.POLL_STARTS_PER_S, Math.max(1, Math.ceil(config.POLL_STARTS_PER_S)))
  const redis = redisSettings(config)
  const cluster = redis === undefined
    ? undefined
    : new Cluster({ config, redis, apis: o.apis, gate, log: app.log.child({ component: 'redis' }), pollLog: hubLog })
  const webhooks = config.WEBHOOK_SECRET === undefined && [...o.apis.values()].every((api) => api.channel.webhookSecret === undefined)
    ? undefined
    : {
        mailbox: cluster?.mailStore(config.WEBHOOK_RETENTION_MS, MAIL_PER_CLIENT) ?? localMailbox(app, config.WEBHOOK_RETENTION_MS),
        echoes: new Echoes(config.WEBHOOK_RETENTION_MS)
      }
  const local = new LocalHub({
    apis: o.apis,
    cursors: o.cursors,
    log: hubLog,
    lingerMs: config.POLL_LINGER_MS,
    bufferSize: config.EVENT_BUFFER,
    bufferBytes: config.EVENT_BUFFER_BYTES,
    // Each socket of a client may have a feed of its own, and as many may linger after a reconnect.
    maxFeedsPerClient: 2 * config.MAX_SOCKETS_PER_CLIENT,
    backoffBaseMs: config.BACKOFF_BASE_MS,
    backoffMaxMs: config.BACKOFF_MAX_MS,
    // A busy upstream may take a while to answer the first poll of a resume; a gap is worse than a slow welcome.
    resumeWaitMs: Math.max(config.REQUEST_TIMEOUT_MS, 5000),
    maxFeeds: config.MAX_POLLS,
    gate,
    source: cluster?.feeds.source,
    webhooks,
    onPublish: onPublish(o.metrics)
  })
  return { gate, cluster, hub: cluster === undefined ? local : cluster.hub(local), webhooks }
}
