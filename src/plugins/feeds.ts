import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Config } from '../config.js'
import { Cluster } from '../cluster/cluster.js'
import { redisSettings } from '../cluster/redis.js'
import type { CursorCodec } from '../feed/cursor.js'
import type { Hub } from '../feed/hub.js'
import { loadHandoff, saveHandoff } from '../feed/handoff.js'
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
  /** The restart handoff, when HANDOFF_FILE is set on a bridge on its own. */
  handoff: Handoff | undefined
}

/** Hands the feeds over to the next process on a graceful stop, and takes them over at start. */
export interface Handoff {
  save: () => Promise<void>
  restore: () => Promise<void>
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
  // A burst of one: new polls are spread evenly, so no second ever starts more than POLL_STARTS_PER_S (a burst
  // the size of the rate let twice as many through in the first second of a storm).
  const gate = new PollGate(config.POLL_STARTS_PER_S, 1)
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
  return { gate, cluster, hub: cluster === undefined ? local : cluster.hub(local), webhooks, handoff: handoffFor(app, config, local, cluster !== undefined, webhooks !== undefined) }
}

/**
 * The restart handoff of a bridge on its own. A cluster's successor resumes
 * from Redis instead, and webhook mail is kept in this process's memory, so
 * positions in it would mean nothing to the next one.
 */
function handoffFor (app: FastifyInstance, config: Config, local: LocalHub, clustered: boolean, webhooks: boolean): Handoff | undefined {
  const file = config.HANDOFF_FILE
  if (file === undefined) return undefined
  if (clustered || webhooks) {
    app.log.warn({ file }, `HANDOFF_FILE is not used ${clustered ? 'with REDIS_URL (a successor resumes from Redis)' : 'while webhooks are on (their mail is kept in memory)'}`)
    return undefined
  }
  const log = app.log.child({ component: 'handoff' })
  return {
    save: async () => {
      const feeds = local.handover()
      try {
        await saveHandoff(file, feeds)
        log.info({ file, feeds: feeds.length }, 'connections handed over to the next start')
      } catch (err) {
        log.warn({ err, file }, 'the handoff file could not be written; the next start resumes every connection from the upstream')
      }
    },
    restore: async () => {
      const feeds = await loadHandoff(file, config.POLL_LINGER_MS, log)
      if (feeds.length > 0) log.info({ file, feeds: local.takeOver(feeds) }, 'connections taken over from the previous process')
    }
  }
}
