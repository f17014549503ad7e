import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import type { Config, Channel } from './config.js'
import { JwtAuth, TicketAuth, deriveKey, type Authenticator } from './socket/auth.js'
import { CursorCodec } from './feed/cursor.js'
import { LocalHub } from './feed/local-hub.js'
import type { Hub } from './feed/hub.js'
import { Cluster } from './cluster/cluster.js'
import { registerClusterMetrics } from './cluster/cluster-metrics.js'
import { redisSettings } from './cluster/redis.js'
import { Requests } from './socket/requests.js'
import { ChatApi } from './upstream/chat-api.js'
import { checkChannel } from './upstream/check.js'
import { within } from './lib/deadline.js'
import { ChannelTraits } from './upstream/traits.js'
import { SUBPROTOCOL } from './socket/protocol.js'
import { wsRoutes } from './plugins/socket-route.js'
import { healthRoutes } from './plugins/health-routes.js'
import { Sessions } from './socket/sessions.js'
import { clientRoutes } from './plugins/pages.js'
import { metricsRoutes } from './plugins/metrics-route.js'
import { Metrics } from './plugins/metrics.js'
import { PollGate } from './feed/poll-gate.js'
import { Mailbox } from './webhook/mailbox.js'
import { Echoes } from './webhook/echoes.js'
import { WebhookInbox } from './webhook/inbox.js'
import { webhookRoutes } from './plugins/webhook-route.js'

export interface AppOptions {
  channels: Channel[]
  /** Serve the demo chat page at `/`. */
  demoPage?: boolean
  /** Where the JSON log lines go instead of stdout (tests read them). */
  logStream?: { write: (line: string) => void }
  /** A pino logger option; defaults to JSON logs at LOG_LEVEL. */
  logger?: boolean | object
}

/** Fields that never reach a log line: credentials, tickets and the channel token. */
export const REDACT = [
  'token', '*.token', 'ticket', '*.ticket', 'auth', '*.auth', 'resume', '*.resume',
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["sec-websocket-protocol"]'
]

declare module 'fastify' {
  interface FastifyInstance {
    bridge: {
      sessions: Sessions
      hub: Hub
      channels: Channel[]
      ready: boolean
      metrics: Metrics | undefined
      /** The port of the separate metrics listener, when METRICS_PORT is set. */
      metricsPort: number | undefined
      /** The webhook receiver, when WEBHOOK_SECRET is set. */
      inbox?: WebhookInbox
      /** Stops taking sockets and closes the open ones over DRAIN_MS; then close the app. */
      drain: () => Promise<void>
    }
  }
}


/** Builds the bridge without listening: tests build it the same way the server does. */
/** Webhook objects kept per client for resumes. */
const MAIL_PER_CLIENT = 500

/** The in-process mailbox, swept of old mail now and then. */
function localMailbox (app: FastifyInstance, retentionMs: number): Mailbox {
  const mailbox = new Mailbox(retentionMs, MAIL_PER_CLIENT)
  const sweep = setInterval(() => { mailbox.sweep() }, 60_000)
  sweep.unref()
  app.addHook('onClose', async () => { clearInterval(sweep) })
  return mailbox
}

export async function buildApp (config: Config, opts: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? {
      level: config.LOG_LEVEL,
      redact: { paths: REDACT, censor: '[redacted]' },
      ...(opts.logStream === undefined ? {} : { stream: opts.logStream })
    },
    // A line per probe and per scrape is noise; at debug level every request is logged.
    logController: new LogController({ disableRequestLogging: config.LOG_LEVEL !== 'debug' && config.LOG_LEVEL !== 'trace' }),
    // A browser may keep a WebSocket open for hours; the server must not time it out.
    requestTimeout: 0,
    // By the time the server closes, every socket had its 1012 (preClose). A connection still open then
    // (an upgrade caught halfway by the shutdown, say) would keep close() waiting forever: cut it.
    forceCloseConnections: true
  })
  if (opts.channels.length === 0) throw new Error('at least one channel is needed')

  let secret: Buffer
  if (config.TICKET_SECRET !== undefined) {
    secret = Buffer.from(config.TICKET_SECRET)
  } else {
    secret = randomBytes(32)
    app.log.warn('TICKET_SECRET is not set: a random secret is used, so tickets and cursors will not survive a restart')
  }
  const auth: Authenticator = config.AUTH_MODE === 'jwt'
    ? new JwtAuth({ secret: config.JWT_SECRET, publicKey: config.JWT_PUBLIC_KEY, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE })
    : new TicketAuth(deriveKey(secret, 'ticket'), config.TICKET_TTL_S)
  const cursors = new CursorCodec(deriveKey(secret, 'cursor'))

  const metrics = config.METRICS ? new Metrics() : undefined
  const observe = metrics === undefined
    ? undefined
    : (call: string, outcome: string, seconds: number) => { metrics.upstreamDuration.observe({ call, outcome }, seconds) }
  const apis = new Map<string, ChatApi>()
  const pools = {
    http2: config.UPSTREAM_HTTP2,
    callsHttp2: config.UPSTREAM_CALLS_HTTP2,
    streams: config.UPSTREAM_STREAMS,
    pollConnections: config.UPSTREAM_POLL_CONNECTIONS,
    callConnections: config.UPSTREAM_CONNECTIONS
  }
  const upstreamLog = app.log.child({ component: 'upstream' })
  for (const c of opts.channels) {
    const log = upstreamLog.child({ channel: c.name })
    const traits = new ChannelTraits({ log, onQuirk: metrics === undefined ? undefined : (quirk) => { metrics.upstreamQuirks.inc({ channel: c.name, quirk }) } })
    apis.set(c.name, new ChatApi(c, { requestTimeoutMs: config.REQUEST_TIMEOUT_MS, pollTimeoutMs: config.POLL_TIMEOUT_MS, pools, observe, traits }))
  }
  const hubLog = app.log.child({ component: 'hub' })
  const gate = new PollGate(config.POLL_STARTS_PER_S, Math.max(1, Math.ceil(config.POLL_STARTS_PER_S)))
  const redis = redisSettings(config)
  // With REDIS_URL, instances share upstream polls, results, send lanes and webhook mail through Redis.
  const cluster = redis === undefined ? undefined : new Cluster({ config, redis, apis, gate, log: app.log.child({ component: 'redis' }), pollLog: hubLog })
  const webhooks = config.WEBHOOK_SECRET === undefined
    ? undefined
    : { mailbox: cluster?.mailStore(config.WEBHOOK_RETENTION_MS, MAIL_PER_CLIENT) ?? localMailbox(app, config.WEBHOOK_RETENTION_MS), echoes: new Echoes(config.WEBHOOK_RETENTION_MS) }
  const local = new LocalHub({
    apis,
    cursors,
    log: hubLog,
    lingerMs: config.POLL_LINGER_MS,
    bufferSize: config.EVENT_BUFFER,
    backoffBaseMs: config.BACKOFF_BASE_MS,
    backoffMaxMs: config.BACKOFF_MAX_MS,
    // A busy upstream may take a while to answer the first poll of a resume; a gap is worse than a slow welcome.
    resumeWaitMs: Math.max(config.REQUEST_TIMEOUT_MS, 5000),
    maxFeeds: config.MAX_POLLS,
    gate,
    source: cluster?.feeds.source,
    webhooks,
    onPublish: metrics === undefined
      ? undefined
      : (channel, ts, sockets) => {
          metrics.upstreamEvents.inc({ channel })
          metrics.eventsForwarded.inc({ channel }, sockets)
          if (sockets > 0) metrics.eventAge.observe({ channel }, Math.max(0, Date.now() - ts) / 1000)
        }
  })
  const hub: Hub = cluster === undefined ? local : cluster.hub(local)
  const sessions = new Sessions(config.HEARTBEAT_MS)
  const requests = new Requests({
    apis,
    resultCacheMs: config.RESULT_CACHE_MS,
    results: cluster?.results,
    lanes: cluster?.lanes,
    onChannelRejected: (channel, reason) => {
      apis.get(channel)?.traits.refuse(reason)
      sessions.rejectChannel(channel)
    }
  })
  metrics?.bind({
    polls: () => cluster?.feeds.owned ?? hub.stats().feeds,
    outboundBytes: () => sessions.outboundBytes(),
    socketsByChannel: () => sessions.socketsByChannel(),
    refusedChannels: () => [...apis].filter(([, api]) => api.traits.refused).map(([name]) => name)
  })
  const drain = async (): Promise<void> => {
    app.bridge.ready = false
    await sessions.drain(config.DRAIN_MS, 1000)
  }
  app.decorate('bridge', { sessions, hub, channels: opts.channels, ready: false, metrics, metricsPort: undefined, drain })

  // An upgrade's socket leaves the HTTP server's care: one refused during shutdown, and left half open
  // by its client, would keep close() waiting forever. Track them, refuse new ones, cut what is left.
  const upgrades = new Set<Socket>()
  let closing = false
  app.server.prependListener('upgrade', (_req: unknown, socket: Socket) => {
    if (closing) {
      socket.destroy()
      return
    }
    upgrades.add(socket)
    socket.once('close', () => { upgrades.delete(socket) })
  })

  // Runs before @fastify/websocket's own preClose: sockets get 1012, not a bare close.
  app.addHook('preClose', async () => {
    closing = true
    app.bridge.ready = false
    requests.shutdown()
    await sessions.closeAll(Math.min(config.SHUTDOWN_TIMEOUT_MS, 2000))
    for (const socket of upgrades) socket.destroy()
    gate.close()
    await hub.close()
  })
  app.addHook('onClose', async () => {
    await Promise.all([...apis.values()].map(async (a) => { await a.close() }))
  })
  // One cheap call per channel tells the operator whether its token works, and the bridge the upstream's clock.
  app.addHook('onReady', async () => {
    const checks = Promise.all([...apis.values()].map(async (api) => { await checkChannel(api, upstreamLog.child({ channel: api.channel.name })) }))
    await within(checks.then(() => {}), 2000, undefined)
  })
  app.addHook('onReady', async () => { app.bridge.ready = true })
  if (cluster !== undefined) {
    // Ready also means Redis answers: while it is down, balancers send new sockets elsewhere.
    let accepting = false
    Object.defineProperty(app.bridge, 'ready', { get: () => accepting && cluster.health.up, set: (v: boolean) => { accepting = v } })
    if (metrics !== undefined) registerClusterMetrics(metrics.registry, cluster.health, cluster.feeds)
    app.addHook('onReady', async () => { await cluster.waitUp(Math.max(2000, config.REDIS_TIMEOUT_MS)) })
    app.addHook('onClose', async () => { await cluster.close() })
  }

  await app.register(websocket, {
    options: {
      maxPayload: config.MAX_FRAME_BYTES,
      handleProtocols: (protocols: Set<string>) => protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false,
      // Event frames are small JSON; compression costs more CPU and memory per socket than it saves.
      perMessageDeflate: false
    }
  })
  await app.register(healthRoutes)
  if (metrics !== undefined) {
    if (config.METRICS_PORT === undefined) {
      await app.register(metricsRoutes, { metrics })
    } else {
      const side = Fastify({ logger: false })
      await side.register(metricsRoutes, { metrics })
      app.addHook('onListen', async () => {
        await side.listen({ port: config.METRICS_PORT, host: config.HOST })
        app.bridge.metricsPort = (side.server.address() as { port: number }).port
      })
      app.addHook('onClose', async () => { await side.close() })
    }
  }
  await app.register(clientRoutes, { demoPage: opts.demoPage ?? false })
  if (webhooks !== undefined && config.WEBHOOK_SECRET !== undefined) {
    // Every instance hears of each kept object (in a cluster, through Redis) and delivers it to its own sockets.
    webhooks.mailbox.onMail((channel, clientId, entries) => {
      for (const m of entries) if (m.questionId !== undefined) webhooks.echoes.webhookDelivered(channel, clientId, m.questionId)
      hub.deliverWebhook(channel, clientId, entries)
    })
    const inbox = new WebhookInbox({
      ...webhooks,
      tokens: new Map(opts.channels.map((c) => [c.name, c.token])),
      ratePerS: config.WEBHOOK_RATE_PER_S,
      onObjects: metrics === undefined
        ? undefined
        : (channel, accepted, duplicates) => {
            metrics.webhookObjects.inc({ channel, result: 'accepted' }, accepted)
            metrics.webhookObjects.inc({ channel, result: 'duplicate' }, duplicates)
          }
    })
    app.bridge.inbox = inbox
    await app.register(webhookRoutes, { inbox, secret: config.WEBHOOK_SECRET, maxBytes: config.WEBHOOK_MAX_BYTES })
  }
  await app.register(wsRoutes, { config, auth, hub, requests, cursors, sessions, metrics })
  return app
}
